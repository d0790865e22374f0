#pragma once

#include "sluice/runtime/function.hpp"

#include <stdexcept>
#include <string>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

/// Side outputs: extra, typed outputs of an operator, addressed by tag
/// (Flink's OutputTag). A process function emits to a tag; the program reads
/// the tag's stream with data_stream::get_side_output.
namespace sluice::runtime {

/// Names one side output of records of type T. Two tags with the same id
/// are the same output, so the id must be used with one type only.
template <class T>
class output_tag {
public:
  using value_type = T;

  explicit output_tag(std::string id) : id_(std::move(id)) {
    if (id_.empty())
      throw std::invalid_argument("an output tag needs a non-empty id");
  }
  [[nodiscard]] const std::string& id() const noexcept { return id_; }

private:
  std::string id_;
};

/// The side outputs wired to one operator instance: tag id -> collector of
/// the tag's type. Tags nobody reads have no entry; records sent to them are
/// dropped (as in Flink). Owned by the operator; used on its subtask thread.
class side_outputs {
public:
  /// Wires tag `id` (records of `type`) to `out`; once per tag, before open.
  void wire(std::string id, std::type_index type, any_collector* out) {
    for (const auto& e : entries_)
      if (e.id == id)
        throw std::logic_error("side output '" + id + "' wired twice");
    entries_.push_back({std::move(id), type, out, nullptr});
  }

  /// Sends `value` to the tag's consumers, if any.
  template <class T>
  void emit(const output_tag<T>& tag, T value) {
    if (auto* c = find(tag))
      c->collect(std::move(value));
  }

  /// The collector of `tag`, or null when nobody reads it.
  template <class T>
  collector<T>* find(const output_tag<T>& tag) const {
    for (auto& e : entries_) {
      if (e.id != tag.id())
        continue;
      // Compare type names once per writing type, then only the pointer
      // to its type_info: this runs for every record sent to the tag.
      if (e.checked != &typeid(T)) {
        if (e.type != std::type_index(typeid(T)))
          throw std::logic_error("side output '" + tag.id() +
                                 "' is read as a different type than it is written");
        e.checked = &typeid(T);
      }
      return static_cast<collector<T>*>(e.out);
    }
    return nullptr;
  }

  /// Watermarks and idleness go to every side output as to the main one.
  void process_watermark(int64_t wm) const {
    for (const auto& e : entries_)
      e.out->process_watermark(wm);
  }
  void process_idleness(bool idle) const {
    for (const auto& e : entries_)
      e.out->process_idleness(idle);
  }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }

private:
  struct entry {
    std::string id;
    std::type_index type;
    any_collector* out;
    const std::type_info* checked = nullptr; ///< last type found to match
  };
  mutable std::vector<entry> entries_;
};

} // namespace sluice::runtime
