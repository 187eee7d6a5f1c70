// store_bench: the storage engine alone (no Node, no N-API), on records shaped
// like the benchmark's standard workload (docs/benchmarks.md: 768 float32 dims, content 50..2000
// UTF-8 bytes with ~2% multi-byte characters, a small JSON metadata object).
//
// Rows (records/s and MB/s of logical bytes: id + content + metadata + embedding):
//   store put (hot)      Store::Put in batches of 1,000, capacities above N
//   store put (default)  Store::Put in batches of 2,000, default capacities:
//                        the native share of the JS bench's bulk insert
//   store open (hot)     Store::Open of a store closed cleanly with all N
//                        records hot (put in batches of 1,000): replaying
//                        hot.log from a warm page cache; the report adds
//                        microseconds per record
//   utf16 -> utf8        Utf16LeToUtf8 over every content (as the binding
//                        converts the strings a put hands it); MB/s of UTF-8
//   warm append          WarmTier::Insert, one record at a time
//   floor: warm bytes    the bytes a warm insert stores, written by write(2)
//                        to two fresh files: the kernel's share of writing
//                        records once into warm (no tierstore code)
//   cold append          ColdTier::Append, segments of 10,000 rows
//   migrate hot->warm    Store::Migrate with hot_capacity 0
//   migrate warm->cold   Store::Migrate with warm_capacity 0
//   batch read <tier>    a Store iterator, Next(1024) until the end, with and
//                        without embeddings, after everything was moved to hot,
//                        warm or cold
//   warm read / cold read  WarmTier::Read / ColdTier::Read of every record
//                        (random order), checksums verified
//   recall <tier> <t>T   Store::Recall top-10 over all records, 1 and 2
//                        threads (compare with scan_bench's C reference loop
//                        over the same number of rows: the target is <= 1.3x)
// Each timed row runs --reps times on a fresh directory where it writes
// (median shown); read rows reuse one store.
//
// usage: store_bench [--n 100000] [--reps 3] [--dir /tmp] [--json FILE] [--only NAME]
// --only NAME runs the groups of rows whose first row's name starts with NAME
// (e.g. "store open"; "warm read" also runs cold read, "batch read" the
// migrations and recall rows that share its store).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "cold_tier.h"
#include "file_util.h"
#include "record.h"
#include "status.h"
#include "store.h"
#include "utf16.h"
#include "warm_tier.h"

namespace fs = std::filesystem;
using namespace tierstore;

namespace {

constexpr uint32_t kDims = 768;

struct Workload {
  std::vector<std::string> ids, contents, metadata;
  std::vector<float> embeddings;  // n x kDims
  std::vector<float> norms;
  double logical_bytes = 0;
  size_t size() const { return ids.size(); }

  RecordView View(size_t i) const {
    RecordView v;
    v.id = ids[i];
    v.content = contents[i];
    v.metadata = metadata[i];
    v.embedding = embeddings.data() + i * kDims;
    v.norm = norms[i];
    v.confidence = 0.5f;
    v.activation = static_cast<float>((i * 2654435761u) % 1000) / 1000.0f;
    v.created_at = 1.7e12 + double(i) * 1000;
    v.last_access_at = v.created_at;
    v.access_count = 0;
    v.seq = i + 1;
    return v;
  }
};

Workload Generate(size_t n) {
  static const char* kMulti[] = {"é", "ü", "ß", "ø", "中", "文", "日", "한", "€", "—", "🙂", "🚀"};
  std::mt19937_64 rng(0x5eed2024);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  Workload w;
  w.ids.reserve(n);
  w.contents.reserve(n);
  w.metadata.reserve(n);
  w.embeddings.resize(n * kDims);
  w.norms.resize(n);
  for (size_t i = 0; i < n; ++i) {
    char id[24];
    std::snprintf(id, sizeof id, "m%016llx", static_cast<unsigned long long>(rng()));
    w.ids.emplace_back(id);
    size_t target = 50 + rng() % 1951;
    std::string c;
    c.reserve(target);
    while (c.size() < target) {
      if (rng() % 100 < 2) {
        const char* m = kMulti[rng() % 12];
        if (c.size() + std::char_traits<char>::length(m) > target) break;
        c += m;
      } else {
        c += (rng() % 7 == 0) ? ' ' : char('a' + rng() % 26);
      }
    }
    while (c.size() < target) c += 'x';
    w.contents.push_back(std::move(c));
    char meta[160];
    std::snprintf(meta, sizeof meta,
                  "{\"source\":\"chat\",\"session\":\"s%u\",\"turn\":%u,\"tags\":[\"user\",\"fact\"],\"importance\":0.%02u}",
                  unsigned(rng() % 5000), unsigned(rng() % 500), unsigned(rng() % 100));
    w.metadata.emplace_back(meta);
    double s = 0;
    for (uint32_t d = 0; d < kDims; ++d) {
      float v = uni(rng);
      w.embeddings[i * kDims + d] = v;
      s += double(v) * v;
    }
    w.norms[i] = static_cast<float>(std::sqrt(s));
    w.logical_bytes += w.ids[i].size() + w.contents[i].size() + w.metadata[i].size() + kDims * 4.0;
  }
  return w;
}

double NowS() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Check(const Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, st.ToString().c_str());
    std::exit(1);
  }
}

// A tier on its own, as a new store would make it (create, open, finish).
void OpenNewWarm(const std::string& dir, std::unique_ptr<WarmTier>* warm) {
  Check(WarmTier::Create(dir, kDims), "WarmTier::Create");
  Check(WarmTier::Open(dir, kDims, false, warm), "WarmTier::Open");
  Check((*warm)->FinishOpen(), "WarmTier::FinishOpen");
}
void OpenNewCold(const std::string& dir, std::unique_ptr<ColdTier>* cold) {
  Check(ColdTier::Open(dir, kDims, false, cold), "ColdTier::Open");
  Check((*cold)->FinishOpen(), "ColdTier::FinishOpen");
}

struct Row {
  std::string name;
  double seconds;  // median
  double records;
  double bytes;
};

std::vector<Row> rows;

void Report(const std::string& name, std::vector<double> secs, double records, double bytes) {
  std::sort(secs.begin(), secs.end());
  double med = secs[secs.size() / 2];
  rows.push_back(Row{name, med, records, bytes});
  std::printf("%-34s %10.3f %14.0f %10.1f\n", name.c_str(), med * 1e3, records / med, bytes / med / 1e6);
  std::fflush(stdout);
}

fs::path FreshDir(const fs::path& base, const char* name) {
  fs::path p = base / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// UTF-16LE bytes of valid UTF-8 text (the workload's own), as V8 hands them over.
std::string Utf16LeOf(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size();) {
    const auto b = static_cast<unsigned char>(utf8[i]);
    const int len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
    i += len;
    auto unit = [&](uint32_t u) {
      out.push_back(static_cast<char>(u & 0xFF));
      out.push_back(static_cast<char>(u >> 8));
    };
    if (cp < 0x10000) {
      unit(cp);
    } else {
      unit(0xD800 + ((cp - 0x10000) >> 10));
      unit(0xDC00 + ((cp - 0x10000) & 0x3FF));
    }
  }
  return out;
}

std::shared_ptr<Store> OpenStore(const fs::path& dir) {
  std::shared_ptr<Store> s;
  StoreOptions o;
  o.dimensions = kDims;
  Check(Store::Open(dir.string(), o, &s), "Store::Open");
  return s;
}

void PutAll(Store& s, const Workload& w, const WriteOptions& wo, size_t batch_size = 1000) {
  std::vector<RecordView> batch;
  for (size_t b = 0; b < w.size(); b += batch_size) {
    batch.clear();
    for (size_t i = b; i < std::min(w.size(), b + batch_size); ++i) batch.push_back(w.View(i));
    Check(s.Put(batch.data(), batch.size(), wo), "Store::Put");
  }
}

void BatchRead(Store& s, const char* tier_name, size_t n, double emb_bytes, double logical) {
  for (bool emb : {false, true}) {
    std::vector<double> secs;
    for (int r = 0; r < 3; ++r) {
      std::unique_ptr<StoreIterator> it;
      Check(s.NewIterator(TierSelector::kAll, &it), "NewIterator");
      RecordBatch b;
      size_t seen = 0;
      double t0 = NowS();
      for (;;) {
        b.Clear();
        Check(it->Next(1024, emb, &b), "Next");
        if (b.size() == 0) break;
        seen += b.size();
      }
      secs.push_back(NowS() - t0);
      it->Close();
      if (seen != n) {
        std::fprintf(stderr, "batch read %s: saw %zu records, expected %zu\n", tier_name, seen, n);
        std::exit(1);
      }
    }
    Report(std::string("batch read ") + tier_name + (emb ? " +emb" : " no emb"), secs, double(n),
           emb ? logical : logical - emb_bytes);
  }
}

void RecallBench(Store& s, const Workload& w, const char* tier_name, size_t n) {
  std::vector<float> q(kDims);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (float& v : q) v = uni(rng);
  for (unsigned threads : {1u, 2u}) {
    RecallOptions o;
    o.k = 10;
    o.threads = threads;
    RecallResult r;
    Check(s.Recall(q.data(), o, &r), "Recall");  // warm-up
    std::vector<double> secs;
    for (int rep = 0; rep < 7; ++rep) {
      r = RecallResult();  // a fresh result each time (Recall may append to it)
      double a = NowS();
      Check(s.Recall(q.data(), o, &r), "Recall");
      secs.push_back(NowS() - a);
    }
    if (r.records.size() != std::min<size_t>(10, n)) {
      std::fprintf(stderr, "recall %s: %zu hits\n", tier_name, r.records.size());
      std::exit(1);
    }
    Report(std::string("recall top-10 ") + tier_name + " " + std::to_string(threads) + "T", secs, double(n),
           double(n) * kDims * 4);
  }
  (void)w;
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 100000;
  int reps = 3;
  fs::path base = fs::temp_directory_path();
  const char* json = nullptr;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) { std::fprintf(stderr, "usage: %s [--n N] [--reps R] [--dir DIR] [--json FILE] [--only NAME]\n", argv[0]); return 2; }
    if (a == "--n") n = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--reps") reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--dir") base = argv[++i];
    else if (a == "--json") json = argv[++i];
    else if (a == "--only") only = argv[++i];
    else { std::fprintf(stderr, "unknown flag %s\n", a.c_str()); return 2; }
  }
  auto want = [&](const char* name) { return only.empty() || std::string(name).rfind(only, 0) == 0; };
  base /= "tierstore-store-bench-" + std::to_string(::getpid());
  fs::create_directories(base);

  double t0 = NowS();
  Workload w = Generate(n);
  const double emb_bytes = double(n) * kDims * 4;
  std::printf("store_bench: %zu records, %u dims, %.1f MB logical (generated in %.1f s), dir %s\n", n, kDims,
              w.logical_bytes / 1e6, NowS() - t0, base.c_str());
  std::printf("%-34s %10s %14s %10s\n", "operation", "ms", "records/s", "MB/s");

  WriteOptions keep_hot;
  keep_hot.hot_capacity = n + 1;
  keep_hot.warm_capacity = n + 1;

  // store put (hot)
  if (want("store put (hot")) {
    std::vector<double> secs;
    for (int r = 0; r < reps; ++r) {
      fs::path d = FreshDir(base, "put");
      auto s = OpenStore(d);
      double a = NowS();
      PutAll(*s, w, keep_hot);
      secs.push_back(NowS() - a);
      s->Release();
    }
    Report("store put (hot, batches of 1000)", secs, double(n), w.logical_bytes);
  }
  // store open: replaying the log of a store with every record hot. The
  // first open after the puts reads the file the puts left in the page
  // cache; every rep opens the same closed store.
  if (want("store open")) {
    fs::path d = FreshDir(base, "open");
    {
      auto s = OpenStore(d);
      PutAll(*s, w, keep_hot);
      s->Release();
    }
    std::vector<double> secs;
    for (int r = 0; r < reps; ++r) {
      double a = NowS();
      auto s = OpenStore(d);
      secs.push_back(NowS() - a);
      TierCounts c;
      Check(s->Counts(&c), "Counts");
      if (c.hot != n) {
        std::fprintf(stderr, "store open: %llu hot records, expected %zu\n", (unsigned long long)c.hot, n);
        return 1;
      }
      s->Release();
    }
    Report("store open (hot, warm page cache)", secs, double(n), w.logical_bytes);
    std::sort(secs.begin(), secs.end());
    std::printf("%-34s %10.3f us/record\n", "  store open per record", secs[secs.size() / 2] / double(n) * 1e6);
  }
  // store put with the default capacities, in the JS bench's batches: the
  // native share of its bulk insert (log, hot, migration to warm, log
  // checkpoints)
  if (want("store put (default")) {
    std::vector<double> secs;
    const WriteOptions defaults;
    for (int r = 0; r < reps; ++r) {
      fs::path d = FreshDir(base, "put-default");
      auto s = OpenStore(d);
      double a = NowS();
      PutAll(*s, w, defaults, 2000);
      secs.push_back(NowS() - a);
      s->Release();
    }
    Report("store put (default, batches of 2000)", secs, double(n), w.logical_bytes);
  }
  // utf16 -> utf8
  if (want("utf16")) {
    std::vector<std::string> wide(n);
    double utf8_bytes = 0;
    for (size_t i = 0; i < n; ++i) {
      wide[i] = Utf16LeOf(w.contents[i]);
      utf8_bytes += double(w.contents[i].size());
    }
    std::vector<char> out(MaxUtf8BytesOfUtf16(2000 * 2));
    std::vector<double> secs;
    for (int r = 0; r < reps; ++r) {
      double a = NowS();
      size_t total = 0;
      for (size_t i = 0; i < n; ++i) total += Utf16LeToUtf8(wide[i].data(), wide[i].size() / 2, out.data());
      secs.push_back(NowS() - a);
      if (total != static_cast<size_t>(utf8_bytes)) {
        std::fprintf(stderr, "utf16 -> utf8 wrote %zu bytes, expected %.0f\n", total, utf8_bytes);
        return 1;
      }
    }
    Report("utf16 -> utf8 (every content)", secs, double(n), utf8_bytes);
  }
  // warm append
  if (want("warm append")) {
    std::vector<double> secs;
    for (int r = 0; r < reps; ++r) {
      fs::path d = FreshDir(base, "warm");
      std::unique_ptr<WarmTier> warm;
      OpenNewWarm(d.string(), &warm);
      double a = NowS();
      for (size_t i = 0; i < n; ++i) {
        uint32_t slot;
        Check(warm->Insert(w.View(i), &slot), "WarmTier::Insert");
      }
      secs.push_back(NowS() - a);
    }
    Report("warm append (WarmTier::Insert)", secs, double(n), w.logical_bytes);
  }
  // The floor of writing records once into warm: the same bytes a warm
  // insert stores (a block of header and embedding, an extent of prefix and
  // strings) written to two fresh files by write(2) in 1 MiB pieces, no
  // sync: what the kernel charges to put them in fresh page-cache pages.
  if (want("floor: warm bytes")) {
    std::vector<double> secs;
    const size_t block = (64 + kDims * 4 + 63) / 64 * 64;
    for (int r = 0; r < reps; ++r) {
      fs::path d = FreshDir(base, "floor");
      File blocks, var;
      Check(File::Open((d / "blocks").string(), O_RDWR | O_CREAT | O_TRUNC, &blocks), "open");
      Check(File::Open((d / "var").string(), O_RDWR | O_CREAT | O_TRUNC, &var), "open");
      std::string bbuf, vbuf;
      uint64_t boff = 0, voff = 0;
      auto flush = [&](File& f, std::string& buf, uint64_t& off, bool last) {
        if (buf.empty() || (!last && buf.size() < (1u << 20))) return;
        Check(f.WriteAt(off, buf.data(), buf.size()), "write");
        off += buf.size();
        buf.clear();
      };
      double a = NowS();
      for (size_t i = 0; i < n; ++i) {
        const RecordView v = w.View(i);
        bbuf.append(64, '\0');
        bbuf.append(reinterpret_cast<const char*>(v.embedding), kDims * 4);
        bbuf.append(block - 64 - kDims * 4, '\0');
        vbuf.append(20, '\0');
        vbuf.append(v.id);
        vbuf.append(v.content);
        vbuf.append(v.metadata);
        flush(blocks, bbuf, boff, false);
        flush(var, vbuf, voff, false);
      }
      flush(blocks, bbuf, boff, true);
      flush(var, vbuf, voff, true);
      secs.push_back(NowS() - a);
    }
    Report("floor: warm bytes to fresh files", secs, double(n), w.logical_bytes);
  }
  // cold append
  if (want("cold append")) {
    std::vector<double> secs;
    std::vector<RecordView> views;
    for (size_t i = 0; i < n; ++i) views.push_back(w.View(i));
    for (int r = 0; r < reps; ++r) {
      fs::path d = FreshDir(base, "cold");
      std::unique_ptr<ColdTier> cold;
      OpenNewCold(d.string(), &cold);
      std::vector<ColdLoc> locs;
      double a = NowS();
      for (size_t b = 0; b < n; b += 10000) {
        locs.clear();
        Check(cold->Append(views.data() + b, std::min<size_t>(10000, n - b), false, &locs), "ColdTier::Append");
      }
      secs.push_back(NowS() - a);
    }
    Report("cold append (10k-row segments)", secs, double(n), w.logical_bytes);
  }
  // warm / cold point reads, random order, through the tiers
  if (want("warm read")) {
    std::vector<uint32_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = uint32_t(i);
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    fs::path d = FreshDir(base, "warmread");
    std::unique_ptr<WarmTier> warm;
    OpenNewWarm(d.string(), &warm);
    std::vector<uint32_t> slots(n);
    for (size_t i = 0; i < n; ++i) Check(warm->Insert(w.View(i), &slots[i]), "WarmTier::Insert");
    std::vector<double> secs;
    for (int r = 0; r < reps; ++r) {
      double a = NowS();
      size_t bytes = 0;
      for (uint32_t i : order) {
        RecordView v;
        Check(warm->Read(slots[i], true, &v), "WarmTier::Read");
        bytes += v.content.size();
      }
      secs.push_back(NowS() - a);
      if (bytes == 0) return 1;
    }
    Report("warm read (random, crc checked)", secs, double(n), w.logical_bytes);

    fs::path dc = FreshDir(base, "coldread");
    std::unique_ptr<ColdTier> cold;
    OpenNewCold(dc.string(), &cold);
    std::vector<RecordView> views;
    for (size_t i = 0; i < n; ++i) views.push_back(w.View(i));
    std::vector<ColdLoc> locs, all;
    for (size_t b = 0; b < n; b += 10000) {
      locs.clear();
      Check(cold->Append(views.data() + b, std::min<size_t>(10000, n - b), false, &locs), "ColdTier::Append");
      all.insert(all.end(), locs.begin(), locs.end());
    }
    secs.clear();
    for (int r = 0; r < reps; ++r) {
      double a = NowS();
      size_t bytes = 0;
      for (uint32_t i : order) {
        RecordView v;
        Check(cold->Read(all[i], true, &v), "ColdTier::Read");
        bytes += v.content.size();
      }
      secs.push_back(NowS() - a);
      if (bytes == 0) return 1;
    }
    Report("cold read (random, crc checked)", secs, double(n), w.logical_bytes);
  }
  // one store: hot, then migrate to warm, then to cold; batch reads in each
  if (want("batch read")) {
    fs::path d = FreshDir(base, "tiers");
    auto s = OpenStore(d);
    PutAll(*s, w, keep_hot);
    BatchRead(*s, "hot", n, emb_bytes, w.logical_bytes);
    RecallBench(*s, w, "hot", n);

    WriteOptions to_warm = keep_hot;
    to_warm.hot_capacity = 0;
    MigrationReport rep;
    double a = NowS();
    Check(s->Migrate(to_warm, &rep), "Migrate to warm");
    Report("migrate hot->warm", {NowS() - a}, double(n), w.logical_bytes);
    BatchRead(*s, "warm", n, emb_bytes, w.logical_bytes);
    RecallBench(*s, w, "warm", n);

    WriteOptions to_cold = to_warm;
    to_cold.warm_capacity = 0;
    a = NowS();
    Check(s->Migrate(to_cold, &rep), "Migrate to cold");
    Report("migrate warm->cold", {NowS() - a}, double(n), w.logical_bytes);
    BatchRead(*s, "cold", n, emb_bytes, w.logical_bytes);
    RecallBench(*s, w, "cold", n);
    TierCounts c;
    Check(s->Counts(&c), "Counts");
    if (c.cold != n) std::fprintf(stderr, "note: after migrating, counts are hot %llu warm %llu cold %llu\n",
                                  (unsigned long long)c.hot, (unsigned long long)c.warm, (unsigned long long)c.cold);
    s->Release();
  }
  std::printf("(MB/s: logical bytes = id + content + metadata + embedding; 'no emb' rows exclude the embedding bytes;\n"
              " recall rows: embedding bytes scanned, so MB/s/1000 is GB/s comparable with scan_bench)\n");

  if (json) {
    FILE* f = std::fopen(json, "w");
    if (f) {
      std::fprintf(f, "{\"n\": %zu, \"dims\": %u, \"rows\": [", n, kDims);
      for (size_t i = 0; i < rows.size(); ++i)
        std::fprintf(f, "%s\n  {\"name\": \"%s\", \"ms\": %.3f, \"records_per_s\": %.0f, \"mb_per_s\": %.2f}", i ? "," : "",
                     rows[i].name.c_str(), rows[i].seconds * 1e3, rows[i].records / rows[i].seconds,
                     rows[i].bytes / rows[i].seconds / 1e6);
      std::fprintf(f, "\n]}\n");
      std::fclose(f);
    }
  }
  fs::remove_all(base);
  return 0;
}
