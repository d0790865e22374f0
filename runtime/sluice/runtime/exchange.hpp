#pragma once

#include "sluice/runtime/function.hpp"
#include "sluice/runtime/words.hpp"
#include "sluice/state/key_group.hpp"
#include "sluice/state/serializer.hpp"

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/// Exchanges: how the records of one operator reach the subtasks of the next
/// when they are not chained. Records are written into typed batches per
/// channel; the execution layer (output_gate) moves full batches under credit.
namespace sluice::runtime {

/// How records are distributed over the downstream subtasks of an edge.
enum class ship_strategy { forward, rebalance, rescale, shuffle, broadcast, global, hash, custom };

/// The name Flink's plans use ("FORWARD", "HASH", ...).
const char* to_string(ship_strategy s) noexcept;

/// True for strategies that connect each upstream subtask to a subset of the
/// downstream subtasks (forward, rescale); the rest connect all to all.
constexpr bool is_pointwise(ship_strategy s) noexcept {
  return s == ship_strategy::forward || s == ship_strategy::rescale;
}

/// A batch of records in flight between two subtasks. In-process it holds
/// the records themselves; the same buffer travels back with the credit and
/// is refilled.
class batch_base {
public:
  virtual ~batch_base() = default;
  virtual size_t size() const noexcept = 0;
  /// Appends the records and their timestamps in the channel-state encoding
  /// (unaligned checkpoints store batches in flight this way); throws
  /// std::logic_error when the record type has no serializer.
  virtual void write_records(std::string& out) const = 0;
  /// Drops the records and keeps the capacity, so the buffer can be
  /// refilled (a batch sent to another process stays with its sender).
  virtual void clear() noexcept = 0;
};

/// Allocates whole cache lines: data read on every record must not share
/// a line with data another core writes.
template <class T>
struct cache_line_allocator {
  using value_type = T;
  static constexpr size_t line = 64;
  static constexpr std::align_val_t alignment{alignof(T) < line ? line : alignof(T)};
  cache_line_allocator() = default;
  template <class U>
  cache_line_allocator(const cache_line_allocator<U>&) noexcept {}
  static size_t bytes(size_t n) noexcept { return (n * sizeof(T) + line - 1) / line * line; }
  T* allocate(size_t n) { return static_cast<T*>(::operator new(bytes(n), alignment)); }
  void deallocate(T* p, size_t) noexcept { ::operator delete(p, alignment); }
  template <class U>
  bool operator==(const cache_line_allocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const cache_line_allocator<U>&) const noexcept { return false; }
};

/// The records of one batch: a fixed-capacity array filled once and read
/// once. Unlike std::vector, a slot can be claimed without being written, so
/// trivial records can be stored with streaming stores (see append()).
template <class T>
class batch_records {
public:
  batch_records() = default;
  batch_records(const batch_records&) = delete;
  batch_records& operator=(const batch_records&) = delete;
  ~batch_records() {
    clear();
    if (data_ != nullptr)
      cache_line_allocator<T>{}.deallocate(data_, capacity_);
  }

  /// Allocates room for `n` records; only on an empty, unallocated batch.
  void reserve(size_t n) {
    if (data_ != nullptr)
      throw std::logic_error("batch_records::reserve on an allocated batch");
    data_ = cache_line_allocator<T>{}.allocate(n);
    capacity_ = n;
  }
  size_t size() const noexcept { return size_; }
  size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }
  T& operator[](size_t i) noexcept { return data_[i]; }
  const T& operator[](size_t i) const noexcept { return data_[i]; }

  /// Appends within capacity (the caller hands the batch over when full).
  void push_back(T&& value) {
    ::new (static_cast<void*>(data_ + size_)) T(std::move(value));
    ++size_;
  }
  void push_back(const T& value) {
    ::new (static_cast<void*>(data_ + size_)) T(value);
    ++size_;
  }
  /// Appends with a streaming store (streamable records only).
  inline void stream_back(const T& value) noexcept;
  /// Takes records [size(), n) as written in place by streaming stores
  /// through begin() (streamable records only, n <= capacity()).
  void set_streamed_size(size_t n) noexcept { size_ = n; }

  void clear() noexcept {
    if constexpr (!std::is_trivially_destructible_v<T>)
      for (size_t i = 0; i < size_; ++i)
        data_[i].~T();
    size_ = 0;
  }

private:
  T* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

/// Aligned to a cache line: the sending core writes the batch's size per
/// record, and no other object may share that line.
template <class T>
class alignas(64) record_batch final : public batch_base {
public:
  size_t size() const noexcept override { return records.size(); }
  void write_records(std::string& out) const override;
  void clear() noexcept override {
    records.clear();
    timestamps.clear();
  }
  batch_records<T> records;
  /// One per record when the stream carries timestamps, else empty.
  batch_records<int64_t> timestamps;
};

/// Whether batches of T can be written as channel state (and, later, cross
/// processes): T has a sluice serializer.
template <class T>
constexpr bool serializable_record_v = state::is_serializable_v<T>;

template <class T>
void record_batch<T>::write_records(std::string& out) const {
  if constexpr (serializable_record_v<T>) {
    state::byte_writer w(out);
    auto n = records.size();
    w.write_varint(n);
    bool with_ts = timestamps.size() == n && n > 0;
    w.write_u8(with_ts ? 1 : 0);
    for (size_t i = 0; i < n; ++i)
      state::serializer<T>::write(w, records[i]);
    if (with_ts)
      for (size_t i = 0; i < n; ++i)
        w.write_u64(static_cast<uint64_t>(timestamps[i]));
  } else {
    (void)out;
    throw std::logic_error("a record type without a serializer cannot be stored as channel state");
  }
}

/// Reads a batch written by write_records() with room for at least
/// `min_capacity` records (a batch that may be refilled needs the sender's
/// full capacity). Throws state::serialization_error on malformed bytes.
template <class T>
std::shared_ptr<record_batch<T>> read_record_batch(state::byte_reader& r, size_t min_capacity) {
  if constexpr (serializable_record_v<T>) {
    auto n = r.read_varint();
    if (n > r.remaining())
      r.fail("batch of " + std::to_string(n) + " records in " + std::to_string(r.remaining()) +
             " bytes");
    auto with_ts = r.read_u8();
    if (with_ts > 1)
      r.fail("invalid timestamp flag");
    auto b = std::make_shared<record_batch<T>>();
    b->records.reserve(std::max<size_t>(std::max<size_t>(n, min_capacity), 1));
    for (uint64_t i = 0; i < n; ++i)
      b->records.push_back(state::serializer<T>::read(r));
    if (with_ts != 0) {
      b->timestamps.reserve(std::max<size_t>(n, min_capacity));
      for (uint64_t i = 0; i < n; ++i)
        b->timestamps.push_back(static_cast<int64_t>(r.read_u64()));
    }
    return b;
  } else {
    (void)min_capacity;
    r.fail("a record type without a serializer cannot be read from channel state");
  }
}

/// Records written with streaming (non-temporal) stores: copied and
/// destroyed trivially (std::pair qualifies, though its assignment is
/// user-defined), made of whole 8-byte words. The lines of a recycled batch were
/// last read by the receiving core; an ordinary store must first take each
/// line back from that core's cache (a round trip per 64 bytes that bounds
/// a keyed exchange), a streaming store does not.
template <class T>
constexpr bool streamable_record_v =
#if defined(__x86_64__)
  word_record_v<T>;
#else
  false;
#endif

template <class T>
inline void stream_store(T* dst, const T& value) noexcept {
#if defined(__x86_64__)
  // One 8-byte streaming store per word, read word by word. The record was
  // usually just built on the caller's stack with 8-byte stores; a 16-byte
  // load of it cannot be forwarded from two narrower stores and waits for
  // them to retire, a stall that cost the keyed exchange ~10 % (bench (b)).
  long long words[sizeof(T) / 8];
  std::memcpy(words, static_cast<const void*>(&value), sizeof(T));
  for (size_t i = 0; i < sizeof(T) / 8; ++i)
    _mm_stream_si64(reinterpret_cast<long long*>(dst) + i, words[i]);
#else
  *dst = value;
#endif
}

template <class T>
void batch_records<T>::stream_back(const T& value) noexcept {
  stream_store(data_ + size_, value);
  ++size_;
}

/// Makes streaming stores visible before a batch changes hands.
inline void stream_fence() noexcept {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

/// Shared so the same buffer can ride in an actor message and come back;
/// by protocol exactly one side uses it at a time.
using batch_ptr = std::shared_ptr<batch_base>;

/// Implemented by the execution layer: takes full batches of an output's
/// channel and delivers them under credit.
class output_gate {
public:
  virtual ~output_gate() = default;
  /// Takes the filled `batch` of channel `channel` of output `output`, and
  /// returns an empty recycled buffer to fill next (nullptr if none is free).
  /// Never blocks: without credit the batch waits in the gate, and the
  /// subtask stops taking input until credit returns.
  virtual batch_ptr hand_over(uint32_t output, uint32_t channel, batch_ptr batch) = 0;
  /// Whether channel `channel` of output `output` may send right now.
  virtual bool has_credit(uint32_t output, uint32_t channel) const = 0;
  /// Sends a control event (channel_event kind and value) on a channel,
  /// after every batch handed over before it. Needs no credit.
  virtual void send_event(uint32_t output, uint32_t channel, uint8_t kind, int64_t value) = 0;
};

/// Control events on a data channel, in order with its batches.
enum class channel_event : uint8_t {
  end_of_partition = 0,
  watermark = 1, ///< value: the watermark
  idle = 2,      ///< the sender's input went idle
  active = 3,    ///< ... and became active again
  barrier = 4,   ///< value: the checkpoint id
};

/// Sizing and timing of batches, from configuration.
struct exchange_params {
  /// Target bytes per batch; records per batch = bytes / sizeof(T), clamped.
  size_t batch_bytes = 64 * 1024;
  size_t min_batch_records = 256;
  size_t max_batch_records = 16384;
  /// Buffer timeout 0: every record is sent on its own.
  bool flush_every_record = false;

  template <class T>
  size_t records_per_batch() const noexcept {
    if (flush_every_record)
      return 1;
    size_t n = batch_bytes / sizeof(T);
    return n < min_batch_records ? min_batch_records
                                 : (n > max_batch_records ? max_batch_records : n);
  }
};

/// Type-erased network output as the subtask sees it.
class network_output_base {
public:
  virtual ~network_output_base() = default;
  /// The collector the upstream operator writes into.
  virtual any_collector* collector_ptr() = 0;
  /// Hands over every non-empty batch; with `only_with_credit`, only those
  /// whose channel has credit (the buffer-timeout flush skips backpressured
  /// channels, as Flink's output flusher does).
  virtual void flush(bool only_with_credit) = 0;
  /// Records written into this output so far.
  virtual uint64_t records_out() const noexcept = 0;
  /// Hands over every partial batch, then sends the event on every channel
  /// (checkpoint barriers go this way).
  virtual void broadcast_event(channel_event kind, int64_t value) = 0;
  /// Whether this output's batches can be stored as channel state.
  virtual bool records_serializable() const noexcept = 0;
  /// Reads one batch of this output's record type from channel state, sized
  /// so the output can refill it when it comes back with a credit.
  virtual batch_ptr read_batch(state::byte_reader& r) const = 0;
  /// Where the timestamp of the current record is read; with `carry`, each
  /// record's timestamp travels with it.
  void set_element_context(element_context* e, bool carry) noexcept {
    ectx_ = e;
    carry_timestamps_ = carry && e != nullptr;
  }

protected:
  element_context* ectx_ = nullptr;
  bool carry_timestamps_ = false;
};

/// Writes records into per-channel batches, choosing channels with
/// `Selector` (a partitioner). Selector::select(record) returns a channel
/// index, or Selector::broadcast is true.
template <class T, class Selector>
class alignas(64) network_output final : public network_output_base, public collector<T> {
public:
  network_output(output_gate& gate, uint32_t id, uint32_t channels, Selector sel,
                 const exchange_params& params)
    : gate_(gate), id_(id), sel_(std::move(sel)), capacity_(params.records_per_batch<T>()) {
    batches_.resize(channels);
    lanes_.resize(channels);
    for (uint32_t ch = 0; ch < channels; ++ch)
      attach(ch, fresh());
  }
  using collector<T>::collect;

  any_collector* collector_ptr() override { return this; }

  void collect(T&& value) override {
    ++records_;
    if constexpr (Selector::broadcast) {
      for (uint32_t ch = 0; ch + 1 < batches_.size(); ++ch)
        append(ch, T(value));
      append(static_cast<uint32_t>(batches_.size() - 1), std::move(value));
    } else {
      append(sel_.select(static_cast<const T&>(value)), std::move(value));
    }
  }

  /// Chooses the channels of a block of records first (their key hashes
  /// are independent and overlap), then appends them in order.
  void collect_batch(T* records, size_t n) override {
    if constexpr (Selector::broadcast)
      collector<T>::collect_batch(records, n);
    else
      append_block(records, nullptr, n);
  }

  /// As collect_batch, each record with its timestamp (carried when this
  /// output carries timestamps).
  void collect_stamped(T* records, const int64_t* timestamps, size_t n,
                       element_context& element) override {
    if constexpr (Selector::broadcast) {
      collector<T>::collect_stamped(records, timestamps, n, element);
    } else if (n > 0) {
      append_block(records, timestamps, n);
      element.timestamp = timestamps[n - 1];
    }
  }

  void flush(bool only_with_credit) override {
    for (uint32_t ch = 0; ch < batches_.size(); ++ch)
      if (pending(ch) > 0 && (!only_with_credit || gate_.has_credit(id_, ch)))
        hand_over(ch);
  }

  /// A watermark goes to every channel, after the records before it.
  void process_watermark(int64_t wm) override { broadcast_event(channel_event::watermark, wm); }
  void process_idleness(bool idle) override {
    broadcast_event(idle ? channel_event::idle : channel_event::active, 0);
  }

  uint64_t records_out() const noexcept override { return records_; }

  void broadcast_event(channel_event kind, int64_t value) override {
    flush(false);
    for (uint32_t ch = 0; ch < batches_.size(); ++ch)
      gate_.send_event(id_, ch, static_cast<uint8_t>(kind), value);
  }

  bool records_serializable() const noexcept override { return serializable_record_v<T>; }

  batch_ptr read_batch(state::byte_reader& r) const override {
    return read_record_batch<T>(r, capacity_);
  }

private:

  /// Appends records[0, n), with timestamps[i] or (without timestamps) the
  /// element context's, channels chosen 16 at a time.
  void append_block(T* records, const int64_t* timestamps, size_t n) {
    records_ += n;
    constexpr size_t block = 16;
    uint32_t channels[block];
    for (size_t base = 0; base < n; base += block) {
      const size_t m = std::min(block, n - base);
      T* r = records + base;
      for (size_t j = 0; j < m; ++j)
        channels[j] = sel_.select(static_cast<const T&>(r[j]));
      for (size_t j = 0; j < m; ++j) {
        if (timestamps != nullptr)
          append(channels[j], std::move(r[j]), timestamps[base + j]);
        else
          append(channels[j], std::move(r[j]));
      }
    }
  }

  /// Appends a record with the element context's timestamp.
  void append(uint32_t ch, T&& value) {
    append(ch, std::move(value), carry_timestamps_ ? ectx_->timestamp : 0);
  }
  /// Appends a record (and its timestamp, when carried); a full batch goes.
  void append(uint32_t ch, T&& value, int64_t timestamp) {
    if constexpr (streamable_record_v<T>) {
      // Through the channel's lane: the stores and a count, nothing else.
      auto& l = lanes_[ch];
      if (carry_timestamps_) {
        if (l.timestamps == nullptr)
          attach_timestamps(ch);
        stream_store(l.timestamps + l.size, timestamp);
      }
      stream_store(l.records + l.size, value);
      if (++l.size == capacity_)
        hand_over(ch);
    } else {
      auto& b = *batches_[ch];
      if (carry_timestamps_) {
        if (b.timestamps.capacity() == 0)
          b.timestamps.reserve(capacity_);
        // Streamed (see streamable_record_v): the lines of a recycled
        // buffer were last read by the receiving core.
        b.timestamps.stream_back(timestamp);
      }
      b.records.push_back(std::move(value));
      if (b.records.size() >= capacity_)
        hand_over(ch);
    }
  }

  /// Records appended to channel ch's batch and not yet handed over.
  size_t pending(uint32_t ch) const noexcept {
    if constexpr (streamable_record_v<T>)
      return lanes_[ch].size;
    else
      return batches_[ch]->records.size();
  }

  void hand_over(uint32_t ch) {
    if constexpr (streamable_record_v<T>) {
      // The batch learns what its lane wrote.
      auto& l = lanes_[ch];
      batches_[ch]->records.set_streamed_size(l.size);
      if (carry_timestamps_ && l.size > 0)
        batches_[ch]->timestamps.set_streamed_size(l.size);
    }
    if (streamable_record_v<T> || carry_timestamps_)
      stream_fence();
    auto next = gate_.hand_over(id_, ch, std::move(batches_[ch]));
    attach(ch, next ? std::static_pointer_cast<record_batch<T>>(std::move(next)) : fresh());
  }

  /// Makes `b` (empty) channel ch's batch, and points its lane at it.
  void attach(uint32_t ch, std::shared_ptr<record_batch<T>> b) {
    batches_[ch] = std::move(b);
    auto& l = lanes_[ch];
    l.records = batches_[ch]->records.begin();
    l.timestamps = batches_[ch]->timestamps.capacity() > 0 ? batches_[ch]->timestamps.begin()
                                                           : nullptr;
    l.size = 0;
  }
  /// Gives channel ch's batch room for timestamps (the first carried one).
  void attach_timestamps(uint32_t ch) {
    auto& ts = batches_[ch]->timestamps;
    if (ts.capacity() == 0)
      ts.reserve(capacity_);
    lanes_[ch].timestamps = ts.begin();
  }

  std::shared_ptr<record_batch<T>> fresh() const {
    auto b = std::make_shared<record_batch<T>>();
    b->records.reserve(capacity_);
    return b;
  }

  /// Where channel ch's next streamed record goes: raw cursors into its
  /// batch, so appending costs the stores and a count, with no trip through
  /// the batch object (whose sizes are set when it goes).
  struct lane {
    T* records = nullptr;
    int64_t* timestamps = nullptr; ///< null until a timestamp is carried
    size_t size = 0;
  };

  output_gate& gate_;
  uint32_t id_;
  Selector sel_;
  size_t capacity_;
  uint64_t records_ = 0;
  std::vector<std::shared_ptr<record_batch<T>>> batches_;
  std::vector<lane> lanes_;
};

/// Partitioners: choose the channel of a record among `n` channels.
struct single_channel_selector {
  static constexpr bool broadcast = false;
  template <class T>
  uint32_t select(const T&) const noexcept { return 0; }
};

struct round_robin_selector {
  static constexpr bool broadcast = false;
  uint32_t n = 1;
  uint32_t next = 0;
  template <class T>
  uint32_t select(const T&) noexcept {
    uint32_t ch = next;
    next = next + 1 == n ? 0 : next + 1;
    return ch;
  }
};

struct random_selector {
  static constexpr bool broadcast = false;
  uint32_t n = 1;
  std::minstd_rand rng{std::random_device{}()};
  template <class T>
  uint32_t select(const T&) noexcept {
    return static_cast<uint32_t>(rng() % n);
  }
};

struct broadcast_selector {
  static constexpr bool broadcast = true;
  template <class T>
  uint32_t select(const T&) const noexcept { return 0; }
};

/// key_by: the key's key group, then the subtask whose range holds it.
/// Per record this is the hot path of every keyed exchange, so the two
/// divisions of the formula become a mask (max parallelism is a power of two
/// by default) and a table lookup from key group to subtask.
template <class K, class KeySel>
struct key_group_selector {
  static constexpr bool broadcast = false;

  key_group_selector(KeySel k, int32_t max_parallelism, int32_t parallelism)
    : key(std::move(k)), max_parallelism(max_parallelism),
      mask((max_parallelism & (max_parallelism - 1)) == 0 ? max_parallelism - 1 : -1),
      subtask_of(static_cast<size_t>(max_parallelism)) {
    for (int32_t kg = 0; kg < max_parallelism; ++kg)
      subtask_of[static_cast<size_t>(kg)] = static_cast<uint32_t>(
        state::subtask_for_key_group(max_parallelism, parallelism, kg));
  }

  template <class T>
  uint32_t select(const T& v) const {
    auto h = state::murmur_hash(state::key_hash<K>{}(key(v)));
    auto kg = mask >= 0 ? (h & mask) : (h % max_parallelism);
    return subtask_of[static_cast<size_t>(kg)];
  }

  KeySel key;
  int32_t max_parallelism;
  int32_t mask;
  std::vector<uint32_t, cache_line_allocator<uint32_t>> subtask_of;
};

/// partition_custom: user partitioner(key, n) -> channel.
template <class KeySel, class Partitioner>
struct custom_selector {
  static constexpr bool broadcast = false;
  KeySel key;
  Partitioner part;
  uint32_t n;
  std::string op_name;
  template <class T>
  uint32_t select(const T& v) {
    auto ch = part(key(v), static_cast<int32_t>(n));
    if (ch < 0 || static_cast<uint32_t>(ch) >= n)
      throw user_code_error(op_name, "custom partitioner returned channel " + std::to_string(ch) +
                                       " outside [0, " + std::to_string(n) + ")");
    return static_cast<uint32_t>(ch);
  }
};

/// Feeds the records of arriving batches into the head of a chain.
class input_feeder {
public:
  virtual ~input_feeder() = default;
  /// Pushes every record of `batch` into the target and empties the batch
  /// (keeping its capacity for reuse); returns the number of records.
  virtual size_t feed(batch_base& batch) = 0;
  /// Whether batches of this input can be read from channel state.
  virtual bool records_serializable() const noexcept = 0;
  /// Reads one batch of this input's record type from channel state.
  virtual batch_ptr read_batch(state::byte_reader& r) const = 0;
  /// Where each record's timestamp is published while it is processed.
  void set_element_context(element_context* e) noexcept { ectx_ = e; }

protected:
  element_context* ectx_ = nullptr;
};

template <class T>
class typed_feeder final : public input_feeder {
public:
  explicit typed_feeder(collector<T>* target) : target_(target) {}
  size_t feed(batch_base& batch) override {
    auto& b = static_cast<record_batch<T>&>(batch);
    auto& recs = b.records;
    auto n = recs.size();
    if (ectx_ != nullptr && b.timestamps.size() == n && n > 0) {
      target_->collect_stamped(recs.begin(), b.timestamps.begin(), n, *ectx_);
    } else {
      if (ectx_ != nullptr)
        ectx_->timestamp = INT64_MIN;
      target_->collect_batch(recs.begin(), n);
    }
    recs.clear();
    b.timestamps.clear();
    return n;
  }
  bool records_serializable() const noexcept override { return serializable_record_v<T>; }
  batch_ptr read_batch(state::byte_reader& r) const override { return read_record_batch<T>(r, 0); }

private:
  collector<T>* target_;
};

/// Creates both ends of one edge's exchange for a given record type.
class exchange_factory {
public:
  virtual ~exchange_factory() = default;
  /// The sending end for one upstream subtask connected to `channels`
  /// downstream subtasks (of `downstream_parallelism` in all).
  virtual std::unique_ptr<network_output_base>
  make_output(output_gate& gate, uint32_t id, uint32_t channels, int32_t upstream_index,
              int32_t downstream_parallelism, int32_t downstream_max_parallelism,
              const exchange_params& params, const std::string& op_name) const = 0;
  /// The receiving end feeding `target` (the downstream head's input).
  virtual std::unique_ptr<input_feeder> make_feeder(any_collector* target) const = 0;
};

/// Exchange factory for records of type T with a key selector for hash or
/// custom strategies (unused otherwise).
template <class T, class K = int, class KeySel = void*, class Partitioner = void*>
class typed_exchange final : public exchange_factory {
public:
  typed_exchange(ship_strategy s, KeySel key = {}, Partitioner part = {})
    : strategy_(s), key_(std::move(key)), part_(std::move(part)) {}

  std::unique_ptr<network_output_base>
  make_output(output_gate& gate, uint32_t id, uint32_t channels, int32_t upstream_index,
              int32_t downstream_parallelism, int32_t downstream_max_parallelism,
              const exchange_params& params, const std::string& op_name) const override {
    switch (strategy_) {
      case ship_strategy::forward:
      case ship_strategy::global:
        return make<single_channel_selector>(gate, id, channels, params, {});
      case ship_strategy::rebalance:
      case ship_strategy::rescale:
        // Start at a different channel per upstream subtask so small inputs
        // still spread.
        return make<round_robin_selector>(
          gate, id, channels, params,
          {channels, static_cast<uint32_t>(upstream_index) % channels});
      case ship_strategy::shuffle:
        return make<random_selector>(gate, id, channels, params, {channels});
      case ship_strategy::broadcast:
        return make<broadcast_selector>(gate, id, channels, params, {});
      case ship_strategy::hash:
        if constexpr (!std::is_same_v<KeySel, void*>)
          return make<key_group_selector<K, KeySel>>(
            gate, id, channels, params, {key_, downstream_max_parallelism, downstream_parallelism});
        break;
      case ship_strategy::custom:
        if constexpr (!std::is_same_v<Partitioner, void*>)
          return make<custom_selector<KeySel, Partitioner>>(gate, id, channels, params,
                                                            {key_, part_, channels, op_name});
        break;
    }
    throw std::logic_error("exchange without a key selector for a keyed strategy");
  }

  std::unique_ptr<input_feeder> make_feeder(any_collector* target) const override {
    auto* typed = dynamic_cast<collector<T>*>(target);
    if (typed == nullptr)
      throw std::logic_error("exchange feeds an operator of a different record type");
    return std::make_unique<typed_feeder<T>>(typed);
  }

private:
  template <class Sel>
  static std::unique_ptr<network_output_base> make(output_gate& gate, uint32_t id,
                                                   uint32_t channels,
                                                   const exchange_params& params, Sel sel) {
    return std::make_unique<network_output<T, Sel>>(gate, id, channels, std::move(sel), params);
  }

  ship_strategy strategy_;
  KeySel key_;
  Partitioner part_;
};

} // namespace sluice::runtime
