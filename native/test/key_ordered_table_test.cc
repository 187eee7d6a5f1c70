// Tests of KeyOrderedTable against std::map as the model: random appends
// and takes (so compaction runs many times), iteration and resumption by
// key, Nth, and that objects never move while entries around them go.
#include "../core/key_ordered_table.h"

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "testing.h"

using namespace tierstore;

namespace {

struct Item {
  uint64_t payload;
};

using Table = KeyOrderedTable<Item>;

void CheckSame(const Table& table, const std::map<uint64_t, Item*>& model) {
  CHECK_EQ(table.size(), model.size());
  CHECK_EQ(table.empty(), model.empty());
  auto m = model.begin();
  size_t n = 0;
  for (const auto& e : table) {
    CHECK(m != model.end());
    if (m == model.end()) return;
    CHECK_EQ(e.key(), m->first);
    CHECK(e.value() == m->second);  // the very object: nothing moved
    CHECK(table.Nth(n).key() == m->first);
    ++m;
    ++n;
  }
  CHECK(m == model.end());
  CHECK(table.Nth(n) == table.end());
  for (const auto& [key, item] : model) CHECK(table.Find(key) == item);
}

}  // namespace

TEST(EmptyTableHasNothing) {
  Table t;
  CHECK(t.empty());
  CHECK(t.begin() == t.end());
  CHECK(t.Find(1) == nullptr);
  CHECK(t.Take(1) == nullptr);
  CHECK(t.UpperBound(0) == t.end());
  CHECK(t.Nth(0) == t.end());
}

TEST(RandomAppendsAndTakesMatchAMap) {
  std::mt19937_64 rng(7);
  Table table;
  std::map<uint64_t, Item*> model;
  uint64_t next_key = 0;
  for (int step = 0; step < 200000; ++step) {
    const bool grow = model.size() < 50 || rng() % 100 < 52;
    if (grow) {
      next_key += 1 + rng() % 3;  // gaps, as keys of upserted records leave
      auto item = std::make_unique<Item>(Item{next_key * 10});
      model[next_key] = item.get();
      table.Append(next_key, std::move(item));
    } else {
      // Take a random live key (or the newest one, the upsert case).
      auto it = model.begin();
      if (rng() % 4 == 0) {
        it = std::prev(model.end());
      } else {
        std::advance(it, static_cast<long>(rng() % model.size()));
      }
      std::unique_ptr<Item> got = table.Take(it->first);
      CHECK(got.get() == it->second);
      if (got) CHECK_EQ(got->payload, it->first * 10);
      CHECK(table.Take(it->first) == nullptr);  // gone now
      model.erase(it);
    }
    if (step % 5000 == 0) CheckSame(table, model);
  }
  CheckSame(table, model);
}

TEST(UpperBoundResumesAfterATakenKey) {
  Table t;
  for (uint64_t k = 1; k <= 10; ++k) t.Append(k, std::make_unique<Item>(Item{k}));
  (void)t.Take(5);
  (void)t.Take(6);
  auto it = t.UpperBound(5);  // 5 was yielded, then taken: resume at 7
  CHECK(it != t.end());
  CHECK_EQ(it.key(), 7u);
  CHECK_EQ(t.UpperBound(0).key(), 1u);
  CHECK(t.UpperBound(10) == t.end());
  CHECK(t.UpperBound(1000) == t.end());
  std::vector<uint64_t> rest;
  for (; it != t.end(); ++it) rest.push_back(it.key());
  CHECK((rest == std::vector<uint64_t>{7, 8, 9, 10}));
}

TEST(CompactionKeepsIterationProportionalToLiveEntries) {
  // Take all but every hundredth of 100,000 entries, oldest first: after
  // compaction the table keeps few taken entries, and every survivor, its
  // object and its order stay.
  Table t;
  std::map<uint64_t, Item*> model;
  for (uint64_t k = 1; k <= 100000; ++k) {
    auto item = std::make_unique<Item>(Item{k});
    model[k] = item.get();
    t.Append(k, std::move(item));
  }
  for (uint64_t k = 1; k <= 100000; ++k) {
    if (k % 100 == 0) continue;
    CHECK(t.Take(k) != nullptr);
    model.erase(k);
  }
  CheckSame(t, model);
  CHECK_EQ(t.size(), 1000u);
  // New keys still append after the survivors.
  auto item = std::make_unique<Item>(Item{1});
  Item* raw = item.get();
  t.Append(200000, std::move(item));
  CHECK(t.Find(200000) == raw);
  CHECK_EQ(t.Nth(1000).key(), 200000u);
}

TEST(TakingTheLastEntryEmptiesAndStaysUsable) {
  Table t;
  t.Append(3, std::make_unique<Item>(Item{3}));
  CHECK(t.Take(3) != nullptr);
  CHECK(t.empty());
  CHECK(t.begin() == t.end());
  t.Append(4, std::make_unique<Item>(Item{4}));
  CHECK_EQ(t.begin().key(), 4u);
  t.Clear();
  CHECK(t.empty());
  CHECK(t.Find(4) == nullptr);
}

TEST(SwapExchangesContents) {
  Table a, b;
  a.Append(1, std::make_unique<Item>(Item{1}));
  Item* one = a.Find(1);
  a.Swap(b);
  CHECK(a.empty());
  CHECK(b.Find(1) == one);
}
