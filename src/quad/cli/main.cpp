#include <cstdio>
int main() { std::puts("quad: under construction"); return 0; }
