#pragma once

#include "sluice/runtime/function.hpp"
#include "sluice/state/key_group.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

/// The operators a chain is made of. Each subtask owns its own instances;
/// chained operators hand records to each other through collector<T>.
namespace sluice::runtime {

/// One operator instance inside a subtask's chain.
/// Lifecycle, all on the subtask's thread: set_output, open, records...,
/// finish (input ended: emit what is buffered), close.
class stream_operator {
public:
  explicit stream_operator(std::string name) : name_(std::move(name)) {}
  virtual ~stream_operator() = default;
  stream_operator(const stream_operator&) = delete;
  stream_operator& operator=(const stream_operator&) = delete;

  /// The operator's name as shown in plans and errors.
  const std::string& name() const noexcept { return name_; }

  virtual void open(const runtime_context& /*ctx*/) {}
  /// All input has ended; emit what is still buffered.
  virtual void finish() {}
  virtual void close() {}
  /// Called after each input batch or source step; sinks flush here.
  virtual void end_of_batch() {}
  /// The operator's record input (nullptr for sources).
  virtual any_collector* input() { return nullptr; }
  /// Wires the operator's output, once, before open().
  virtual void set_output(any_collector* /*out*/) {}

protected:
  /// Runs user code, turning any exception into a user_code_error that
  /// names this operator.
  template <class F, class... Args>
  decltype(auto) call_user(F&& f, Args&&... args) {
    try {
      return f(std::forward<Args>(args)...);
    } catch (const user_code_error&) {
      throw;
    } catch (const std::exception& e) {
      throw user_code_error(name_, e.what());
    } catch (...) {
      throw user_code_error(name_, "unknown exception");
    }
  }

private:
  std::string name_;
};

/// Base of operators with one typed input and one typed output.
template <class In, class Out>
class one_input_operator : public stream_operator, public collector<In> {
public:
  using stream_operator::stream_operator;
  using collector<In>::collect;

  any_collector* input() override { return this; }
  void set_output(any_collector* out) override {
    out_ = dynamic_cast<collector<Out>*>(out);
    if (out_ == nullptr)
      throw std::logic_error("operator '" + name() + "' wired to an output of the wrong type");
  }

protected:
  collector<Out>* out_ = nullptr;
};

/// Applies a user function's open/close around an operator's lifecycle.
template <class F>
class with_function {
protected:
  explicit with_function(F f) : fn_(std::move(f)) {}
  void open_function(const runtime_context& ctx) { internal::open_if_rich(fn_, ctx); }
  void close_function() { internal::close_if_rich(fn_); }
  F fn_;
};

template <class In, class Out, class F>
class map_operator final : public one_input_operator<In, Out>, with_function<F> {
public:
  map_operator(std::string name, F f)
    : one_input_operator<In, Out>(std::move(name)), with_function<F>(std::move(f)) {}
  void open(const runtime_context& ctx) override { this->open_function(ctx); }
  void close() override { this->close_function(); }
  void collect(In&& value) override {
    this->out_->collect(this->call_user(this->fn_, std::move(value)));
  }
};

template <class In, class F>
class filter_operator final : public one_input_operator<In, In>, with_function<F> {
public:
  filter_operator(std::string name, F f)
    : one_input_operator<In, In>(std::move(name)), with_function<F>(std::move(f)) {}
  void open(const runtime_context& ctx) override { this->open_function(ctx); }
  void close() override { this->close_function(); }
  void collect(In&& value) override {
    if (this->call_user(this->fn_, static_cast<const In&>(value)))
      this->out_->collect(std::move(value));
  }
};

/// flat_map: the user function gets the record and a collector<Out>&.
template <class In, class Out, class F>
class flat_map_operator final : public one_input_operator<In, Out>, with_function<F> {
public:
  flat_map_operator(std::string name, F f)
    : one_input_operator<In, Out>(std::move(name)), with_function<F>(std::move(f)) {}
  void open(const runtime_context& ctx) override { this->open_function(ctx); }
  void close() override { this->close_function(); }
  void collect(In&& value) override {
    this->call_user(this->fn_, std::move(value), *this->out_);
  }
};

/// Context of a non-keyed process function.
class process_context {
public:
  explicit process_context(const runtime_context* rc) : rc_(rc) {}
  const runtime_context& runtime() const { return *rc_; }

private:
  const runtime_context* rc_;
};

/// Context of a keyed process function: the key of the current record.
template <class K>
class keyed_process_context : public process_context {
public:
  using process_context::process_context;
  const K& current_key() const { return *key_; }
  void set_current_key(const K* k) { key_ = k; }

private:
  const K* key_ = nullptr;
};

/// process: f(In&&, process_context&, collector<Out>&).
template <class In, class Out, class F>
class process_operator final : public one_input_operator<In, Out>, with_function<F> {
public:
  process_operator(std::string name, F f)
    : one_input_operator<In, Out>(std::move(name)), with_function<F>(std::move(f)) {}
  void open(const runtime_context& ctx) override {
    rc_ = ctx;
    this->open_function(ctx);
  }
  void close() override { this->close_function(); }
  void collect(In&& value) override {
    process_context pc{&rc_};
    this->call_user(this->fn_, std::move(value), pc, *this->out_);
  }

private:
  runtime_context rc_;
};

/// Keyed process: f(In&&, keyed_process_context<K>&, collector<Out>&).
template <class K, class In, class Out, class KeySel, class F>
class keyed_process_operator final : public one_input_operator<In, Out>, with_function<F> {
public:
  keyed_process_operator(std::string name, KeySel sel, F f)
    : one_input_operator<In, Out>(std::move(name)), with_function<F>(std::move(f)),
      sel_(std::move(sel)) {}
  void open(const runtime_context& ctx) override {
    rc_ = ctx;
    this->open_function(ctx);
  }
  void close() override { this->close_function(); }
  void collect(In&& value) override {
    K key = sel_(static_cast<const In&>(value));
    keyed_process_context<K> pc{&rc_};
    pc.set_current_key(&key);
    this->call_user(this->fn_, std::move(value), pc, *this->out_);
  }

private:
  KeySel sel_;
  runtime_context rc_;
};

/// Hashes keys with their stable key hash, so user key types need only one
/// hash (state::key_hash) for partitioning and hash maps alike.
template <class K>
struct stable_key_hasher {
  size_t operator()(const K& k) const noexcept(noexcept(state::key_hash<K>{}(k))) {
    return static_cast<uint32_t>(state::key_hash<K>{}(k));
  }
};

/// Rolling per-key fold: fold(acc&, value&&) updates the key's accumulator in
/// place, and every update is emitted (as Flink's keyed reduce does).
/// Keeps its accumulators in a hash map for now; they move into the keyed
/// state backend with state/ (issue 3).
template <class K, class T, class KeySel, class Fold>
class keyed_fold_operator final : public one_input_operator<T, T> {
public:
  keyed_fold_operator(std::string name, KeySel sel, Fold fold)
    : one_input_operator<T, T>(std::move(name)), sel_(std::move(sel)), fold_(std::move(fold)) {}
  void open(const runtime_context& ctx) override { internal::open_if_rich(fold_, ctx); }
  void close() override { internal::close_if_rich(fold_); }
  void collect(T&& value) override {
    auto [it, inserted] = acc_.try_emplace(sel_(static_cast<const T&>(value)), value);
    if (!inserted)
      this->call_user(fold_, it->second, std::move(value));
    this->out_->collect(static_cast<const T&>(it->second));
  }

private:
  KeySel sel_;
  Fold fold_;
  std::unordered_map<K, T, stable_key_hasher<K>> acc_;
};

/// Passes records through unchanged: the head of a union of several inputs.
template <class T>
class identity_operator final : public one_input_operator<T, T> {
public:
  using one_input_operator<T, T>::one_input_operator;
  void collect(T&& value) override { this->out_->collect(std::move(value)); }
};

/// Sends every record to several collectors (an operator whose output feeds
/// more than one downstream operator or channel).
template <class T>
class fanout_collector final : public collector<T> {
public:
  explicit fanout_collector(std::vector<collector<T>*> targets) : targets_(std::move(targets)) {}
  using collector<T>::collect;
  void collect(T&& value) override {
    for (size_t i = 0; i + 1 < targets_.size(); ++i)
      targets_[i]->collect(static_cast<const T&>(value));
    targets_.back()->collect(std::move(value));
  }

private:
  std::vector<collector<T>*> targets_;
};

/// Swallows records: the output of an operator nobody consumes.
template <class T>
class discarding_collector final : public collector<T> {
public:
  using collector<T>::collect;
  void collect(T&&) override {}
};

} // namespace sluice::runtime
