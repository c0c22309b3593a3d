// What a ForwardObserver sees of a decoder layer, in order, and that a layer stops once the
// observer has seen enough (GPTQ's group passes run a layer only up to the group's inputs).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quad/model/model.h"
#include "quad/quant/random_model.h"

namespace quad {
namespace {

class RecordingObserver final : public ForwardObserver {
 public:
  explicit RecordingObserver(std::string last) : last_(std::move(last)) {}
  void norm_input(int layer, int which, const float*, int, int) override {
    seen.push_back(std::to_string(layer) + ":norm" + std::to_string(which));
  }
  void linear_input(int layer, const Linear& lin, const float*, int) override {
    const std::string name = lin.name.substr(lin.name.rfind('.') + 1);
    seen.push_back(std::to_string(layer) + ":" + name);
    done_ = done_ || name == last_;
  }
  bool seen_enough() const override { return done_; }
  std::vector<std::string> seen;

 private:
  std::string last_;
  bool done_ = false;
};

TEST(ForwardObserver, SeesTheLayerInOrderAndStopsItWhenItHasEnough) {
  Model m = make_random_model(random_shape_config("tiny-llama3-30m"), RandomQuant{}, 5);
  m.ensure_positions(16);
  auto backend = make_cpu_backend();
  const int n = 6, D = m.residual_width;
  const std::vector<std::string> all = {"2:norm0",     "2:q_proj",  "2:k_proj",
                                        "2:v_proj",    "2:o_proj",  "2:norm1",
                                        "2:gate_proj", "2:up_proj", "2:down_proj"};
  // The last linear seen before the layer returns, for each place it may stop.
  for (auto [last, count] :
       {std::pair{"v_proj", 4}, {"o_proj", 5}, {"up_proj", 8}, {"down_proj", 9}, {"never", 9}}) {
    SCOPED_TRACE(last);
    std::vector<float> x(size_t(n) * D), k(size_t(n) * 1024), v(k.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 37) % 11) - 5.0f;
    ForwardScratch s;
    RecordingObserver obs(last);
    forward_layer(m, *backend, 2, x.data(), n, 0, k.data(), v.data(), s, &obs);
    EXPECT_EQ(obs.seen, std::vector<std::string>(all.begin(), all.begin() + count));
  }
}

}  // namespace
}  // namespace quad
