#pragma once
// Test helper (not installed): a collector that keeps what an operator or
// source emits, in order.

#include "sluice/runtime/function.hpp"

#include <utility>
#include <vector>

namespace sluice::runtime::testing {

template <class T>
struct vector_collector final : collector<T> {
  std::vector<T> items;
  using collector<T>::collect;
  void collect(T&& v) override { items.push_back(std::move(v)); }
};

} // namespace sluice::runtime::testing
