#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace cdmoe {

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), to_terminal_(stderr_is_tty()),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() {
  // a log file already has the last state as a whole line unless something changed since
  if (enabled_ && (to_terminal_ || done_ != drawn_done_)) draw(true);
}

bool Progress::stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }

void Progress::update(int64_t done) {
  done_ = done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  // A log file (a batch job's output) gets a full line every 10 s rather than 5 redraws a second.
  auto interval = to_terminal_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
  if (done < total_ && now - last_draw_ < interval) return;
  last_draw_ = now;
  draw(false);
}

void Progress::update(int64_t done, int64_t total, std::string detail) {
  total_ = total;
  detail_ = std::move(detail);
  update(done);
}

void Progress::draw(bool final_line) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? double(done_) / elapsed : 0;
  double eta = rate > 0 ? double(total_ - done_) / rate : 0;
  drawn_done_ = done_;
  std::fprintf(stderr, "%s%s: %lld/%lld (%.1f/s, ETA %.0fs)%s%s%s%s", to_terminal_ ? "\r" : "", label_.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), rate, eta, detail_.empty() ? "" : " ",
               detail_.c_str(), to_terminal_ ? "\033[K" : "", final_line || !to_terminal_ ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace cdmoe
