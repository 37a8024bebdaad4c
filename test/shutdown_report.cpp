// Tests for arc/shutdown_report.hpp: defaults, complete(), and the print an
// operator reads during an incident.
#include <arc/shutdown_report.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace {

arc::task_info task(const char* name, std::uint64_t id, arc::task_status s)
{
  arc::task_info t;
  t.name = name;
  t.group = "g";
  t.id = id;
  t.status = s;
  return t;
}

TEST(shutdown_report, options_default_to_a_grace_within_force_after)
{
  const arc::shutdown_options o;
  EXPECT_EQ(o.grace, std::chrono::seconds(5));
  EXPECT_EQ(o.force_after, std::chrono::seconds(10));
}

TEST(shutdown_report, an_empty_report_is_complete_and_prints_a_summary_only)
{
  const arc::shutdown_report r;
  EXPECT_TRUE(r.complete());
  std::ostringstream os;
  os << r;
  EXPECT_EQ(os.str(), "shutdown complete after 0 ms: 0 finished, 0 escalated, 0 failed, 0 still running");
}

TEST(shutdown_report, prints_one_line_per_straggler_escalated_and_failed_then_the_summary)
{
  arc::shutdown_report r;
  r.reason = arc::reason::signal(15);
  r.elapsed = std::chrono::milliseconds(60);
  r.finished = 3;
  r.stragglers.push_back(task("old", 1, arc::task_status::escalated));
  r.stragglers.push_back(task("young", 2, arc::task_status::escalated));
  r.escalated.push_back(task("old", 1, arc::task_status::escalated));
  r.failed.push_back(arc::failed_task{task("writer", 3, arc::task_status::done),
      std::make_exception_ptr(std::runtime_error("flush failed")), "flush failed"});
  EXPECT_FALSE(r.complete());
  std::ostringstream os;
  os << r;
  const std::string text = os.str();
  const auto old_at = text.find("straggler: g/old #1");
  const auto young_at = text.find("straggler: g/young #2");
  ASSERT_NE(old_at, std::string::npos) << text;
  ASSERT_NE(young_at, std::string::npos) << text;
  EXPECT_LT(old_at, young_at) << "in the report's order";
  EXPECT_NE(text.find("escalated: g/old #1"), std::string::npos) << text;
  EXPECT_NE(text.find("failed: g/writer #3"), std::string::npos) << text;
  EXPECT_NE(text.find(": flush failed"), std::string::npos) << text;
  EXPECT_NE(text.find("shutdown INCOMPLETE after 60 ms: 3 finished, 1 escalated, 1 failed, 2 still running"),
      std::string::npos) << text;
  EXPECT_NE(text.find("reason: signal 15"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4) << text;
}

} // namespace
