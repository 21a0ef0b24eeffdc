// Per-item samples (eval/task_samples.h) and their paired comparison (eval/paired_accuracy.h),
// against figures worked out by hand in the comments.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "eval/paired_accuracy.h"
#include "tests/test_util.h"

namespace cdmoe::eval {
namespace {

using testing::TempDir;
using testing::write_file;

// A: 1 1 0 0 1, B: 1 0 1 0 0. d = b - a = 0 -1 1 0 -1: mean -0.2; sample variance
// ((0.2)^2 + (0.8)^2 + (1.2)^2 + (0.2)^2 + (0.8)^2) / 4 = 2.8 / 4 = 0.7, stderr sqrt(0.7 / 5).
// Unpaired: A (mean 0.6) has variance (3 x 0.4^2 + 2 x 0.6^2) / 4 = 0.3, B (mean 0.4)
// (2 x 0.6^2 + 3 x 0.4^2) / 4 = 0.3: sqrt(0.3 / 5 + 0.3 / 5) = sqrt(0.12).
TEST(PairedAccuracy, DifferenceAndStandardErrorsByHand) {
  PairedDifference d = paired_difference("t", {true, true, false, false, true}, {true, false, true, false, false});
  EXPECT_EQ(d.items, 5);
  EXPECT_DOUBLE_EQ(d.acc_a, 0.6);
  EXPECT_DOUBLE_EQ(d.acc_b, 0.4);
  EXPECT_NEAR(d.difference, -0.2, 1e-15);
  EXPECT_NEAR(d.stderr_paired, std::sqrt(0.14), 1e-15);
  EXPECT_NEAR(d.stderr_unpaired, std::sqrt(0.12), 1e-15);
  EXPECT_EQ(d.only_a, 2);
  EXPECT_EQ(d.only_b, 1);
  // The same outcomes on both sides: no difference and no uncertainty about it.
  PairedDifference same = paired_difference("t", {true, false, true}, {true, false, true});
  EXPECT_EQ(same.difference, 0);
  EXPECT_EQ(same.stderr_paired, 0);
  EXPECT_GT(same.stderr_unpaired, 0);
}

Task two_choice_task(const std::string& name, std::vector<int> golds, bool reports_acc_norm) {
  Task task;
  task.name = name;
  task.reports_acc_norm = reports_acc_norm;
  for (int gold : golds) {
    TaskItem item;
    item.context = "c", item.choices = {"a", "bbbb"}, item.gold = gold;
    task.items.push_back(item);
  }
  return task;
}

// samples_jsonl writes what score_item chooses; read_samples reads it back; the comparison pairs
// items by task and index whatever the order of the lines.
TEST(PairedAccuracy, SamplesRoundTripAndCompare) {
  TempDir dir;
  // Item 0: choice 0 by acc (-2 > -4), choice 1 by acc_norm (-4/4 > -2/1). Item 1: choice 1 both ways.
  Task task = two_choice_task("kjv", {1, 1}, true);
  Task plain = two_choice_task("other", {0, 0}, false);
  std::string text = samples_jsonl({task, plain}, {{"kjv", {{-2.0, -4.0}, {-3.0, -1.0}}}, {"other", {{-1.0, -2.0}, {-2.0, -1.0}}}});
  write_file(dir.file("a.jsonl"), text);
  std::vector<SampleRecord> a = read_samples(dir.file("a.jsonl"));
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[0].task, "kjv");
  EXPECT_FALSE(a[0].acc);
  EXPECT_TRUE(a[0].has_acc_norm && a[0].acc_norm);
  EXPECT_TRUE(a[1].acc && a[1].acc_norm);
  EXPECT_FALSE(a[2].has_acc_norm) << "a task without acc_norm records none";
  EXPECT_TRUE(a[2].acc);
  EXPECT_FALSE(a[3].acc);
  EXPECT_NE(text.find("\"loglikelihoods\":[-2.0,-4.0]"), std::string::npos) << text;

  // B gets every item right; its lines come in another order.
  write_file(dir.file("b.jsonl"),
             "{\"task\":\"other\",\"item\":1,\"gold\":0,\"acc\":1}\n{\"task\":\"kjv\",\"item\":1,\"gold\":1,\"acc\":1,\"acc_norm\":1}\n"
             "\n{\"task\":\"kjv\",\"item\":0,\"gold\":1,\"acc\":1,\"acc_norm\":1}\n{\"task\":\"other\",\"item\":0,\"gold\":0,\"acc\":1}\n");
  std::vector<SampleRecord> b = read_samples(dir.file("b.jsonl"));
  std::vector<PairedDifference> rows = compare_samples(a, "a.jsonl", b, "b.jsonl", "acc");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].task, "kjv") << "in A's order";
  EXPECT_DOUBLE_EQ(rows[0].acc_a, 0.5);
  EXPECT_DOUBLE_EQ(rows[0].acc_b, 1.0);
  EXPECT_EQ(rows[0].only_b, 1);
  EXPECT_DOUBLE_EQ(rows[1].acc_a, 0.5);
  // d = 0, 1: mean 0.5, variance 0.5, stderr sqrt(0.5 / 2) = 0.5.
  EXPECT_DOUBLE_EQ(rows[1].stderr_paired, 0.5);

  auto error_of = [&](const std::string& b_text, const std::string& metric = "acc") {
    write_file(dir.file("bad.jsonl"), b_text);
    try {
      compare_samples(a, "a.jsonl", read_samples(dir.file("bad.jsonl")), "bad.jsonl", metric);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string bad = dir.file("bad.jsonl");
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":0,\"gold\":1,\"acc\":1}\n"), "bad.jsonl: task kjv has 1 items, a.jsonl 2: not the same items");
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":0,\"gold\":0,\"acc\":1}\n{\"task\":\"kjv\",\"item\":1,\"gold\":1,\"acc\":1}\n"
                     "{\"task\":\"other\",\"item\":0,\"gold\":0,\"acc\":1}\n{\"task\":\"other\",\"item\":1,\"gold\":0,\"acc\":1}\n"),
            bad + ":1: item 0 of task kjv has gold 0, " + dir.file("a.jsonl") + ":1 has 1: not the same items");
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":0,\"gold\":1,\"acc\":1}\n{\"task\":\"kjv\",\"item\":0,\"gold\":1,\"acc\":1}\n"),
            bad + ":2: item 0 of task kjv appears again (first at " + bad + ":1)");
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":1,\"gold\":1,\"acc\":1}\n{\"task\":\"kjv\",\"item\":1,\"gold\":1,\"acc\":1}\n"),
            bad + ":2: item 1 of task kjv appears again (first at " + bad + ":1)");
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":1,\"gold\":1,\"acc\":1}\n{\"task\":\"other\",\"item\":0,\"gold\":0,\"acc\":1}\n"),
            bad + ":1: task kjv has item 1 but no item 0");
  // Ids past the file's own count are refused before anything is sized by them (10^12 and 2^31
  // were an allocation failure and 17 GB).
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":1,\"gold\":1,\"acc\":1}\n"), bad + ":1: field 'item' is 1, past the file's 1 samples");
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":1000000000000,\"gold\":1,\"acc\":1}\n"),
            bad + ":1: field 'item' is 1000000000000, past the file's 1 samples");
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":2147483648,\"gold\":1,\"acc\":1}\n{\"task\":\"kjv\",\"item\":0,\"gold\":1,\"acc\":1}\n"),
            bad + ":1: field 'item' is 2147483648, past the file's 2 samples");
  EXPECT_EQ(error_of("{\"task\":\"new\",\"item\":0,\"gold\":1,\"acc\":1}\n"), bad + ":1: task new is not in a.jsonl");
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":0,\"gold\":1,\"acc\":2}\n"), bad + ":1: field 'acc' must be 0 or 1, got 2");
  EXPECT_EQ(error_of("{\"task\":\"kjv\",\"item\":0,\"gold\":1}\n").find(bad + ":1"), 0u) << "no acc";
  EXPECT_EQ(error_of("[1]\n"), bad + ":1: expected a JSON object");
  EXPECT_EQ(error_of("\n"), bad + ": holds no samples");
  EXPECT_EQ(error_of(text, "acc_norm"), dir.file("a.jsonl") + ":3: has no acc_norm (its task does not report it)");
  EXPECT_EQ(error_of(text, "f1"), "--metric must be acc or acc_norm, got \"f1\"");
  // B lacks a task of A.
  std::vector<SampleRecord> only_kjv(b.begin() + 1, b.begin() + 3);
  try {
    compare_samples(a, "a.jsonl", only_kjv, "b.jsonl", "acc");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "b.jsonl: has no samples of task other, which a.jsonl has");
  }
}

}  // namespace
}  // namespace cdmoe::eval
