// Progress on stderr for long-running commands: "label: done/total (rate/s, ETA Ns)", the rate
// over the last minute (RecentRate), redrawn
// in place at most 5 times a second on a terminal and finished with a newline; into a file or
// pipe (--progress in a batch job), one full line every 10 s. Silent unless enabled (callers enable
// it when stderr is a TTY or --progress was given). Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>

namespace cdmoe {

// The pace an ETA should assume: completions per second since the newest sample at least
// `window` old (or since the start), so that a run whose units get slower (a sweep's
// fine-tuning after its quick search candidates) is not promised the early pace, and a long
// wait with nothing done lowers the rate as it goes.
class RecentRate {
 public:
  using Clock = std::chrono::steady_clock;
  RecentRate(Clock::time_point start, std::chrono::seconds window) : start_(start), window_(window) {}
  void add(Clock::time_point at, int64_t done);  // a sample; times never go back
  double per_second(Clock::time_point now, int64_t done) const;

 private:
  Clock::time_point start_;
  std::chrono::seconds window_;
  std::deque<std::pair<Clock::time_point, int64_t>> samples_;  // the oldest is the reference
};

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled);
  ~Progress();  // prints the final line when something was shown
  void update(int64_t done);
  // A sweep's total grows as its search unfolds; `detail` is appended to the line.
  void update(int64_t done, int64_t total, std::string detail);

  // True when stderr is a terminal.
  static bool stderr_is_tty();

 private:
  void draw(bool final_line);
  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  int64_t drawn_done_ = -1;
  std::string detail_;
  bool enabled_;
  bool to_terminal_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  RecentRate rate_;
};

}  // namespace cdmoe
