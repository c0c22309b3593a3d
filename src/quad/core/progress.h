// Progress reporting for long jobs on stderr: "label i/N (pct) rate, ETA, peak memory".
// On a terminal it redraws one line; otherwise it prints a line at most every few seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace quad {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "", bool enabled = true);
  // Reports that `done` of `total` steps are complete; `extra` is appended (e.g. "ppl 12.3").
  void update(int64_t done, const std::string& extra = "");
  // Final line with the elapsed time.
  void finish(const std::string& extra = "");
  double elapsed_seconds() const;

 private:
  std::string label_, unit_;
  int64_t total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

// Peak resident set size of this process in MiB.
double peak_memory_mib();
std::string format_duration(double seconds);

}  // namespace quad
