#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace cdmoe {

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), to_terminal_(stderr_is_tty()),
      start_(std::chrono::steady_clock::now()), last_draw_(start_), rate_(start_, std::chrono::seconds(60)) {}

void RecentRate::add(Clock::time_point at, int64_t done) {
  samples_.emplace_back(at, done);
  // Keep one sample at least `window` old as the reference; older ones are not needed.
  while (samples_.size() > 1 && at - samples_[1].first >= window_) samples_.pop_front();
}

double RecentRate::per_second(Clock::time_point now, int64_t done) const {
  auto [since, done_then] = !samples_.empty() && now - samples_.front().first >= window_
                                ? samples_.front()
                                : std::make_pair(start_, int64_t(0));
  double seconds = std::chrono::duration<double>(now - since).count();
  return seconds > 0 ? double(done - done_then) / seconds : 0;
}

Progress::~Progress() {
  // a log file already has the last state as a whole line unless something changed since
  if (enabled_ && (to_terminal_ || done_ != drawn_done_)) draw(true);
}

bool Progress::stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }

void Progress::update(int64_t done) {
  if (!enabled_) {
    done_ = done;
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (done != done_) rate_.add(now, done);
  done_ = done;
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
  double rate = rate_.per_second(std::chrono::steady_clock::now(), done_);
  double eta = rate > 0 ? double(total_ - done_) / rate : 0;
  drawn_done_ = done_;
  std::fprintf(stderr, "%s%s: %lld/%lld (%.*f/s, ETA %.0fs)%s%s%s%s", to_terminal_ ? "\r" : "", label_.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), rate < 1 ? 3 : 1, rate, eta,
               detail_.empty() ? "" : " ", detail_.c_str(), to_terminal_ ? "\033[K" : "", final_line || !to_terminal_ ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace cdmoe
