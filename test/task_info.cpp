// Tests for arc/task_info.hpp: task_status names and the one-line print.
#include <arc/task_info.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>

namespace {

TEST(task_info, every_status_has_its_name)
{
  EXPECT_STREQ(arc::to_string(arc::task_status::running), "running");
  EXPECT_STREQ(arc::to_string(arc::task_status::cancelling), "cancelling");
  EXPECT_STREQ(arc::to_string(arc::task_status::escalated), "escalated");
  EXPECT_STREQ(arc::to_string(arc::task_status::done), "done");
}

TEST(task_info, prints_group_name_id_site_age_status_and_reason_on_one_line)
{
  arc::task_info t;
  t.id = 12;
  t.name = "conn 7";
  t.group = "connections";
  t.where = std::source_location::current();
  t.age = std::chrono::milliseconds(1520);
  t.status = arc::task_status::cancelling;
  t.reason = arc::reason::shutdown("deploy");
  std::ostringstream os;
  os << t;
  const std::string line = os.str();
  EXPECT_NE(line.find("connections/conn 7 #12"), std::string::npos) << line;
  EXPECT_NE(line.find("task_info.cpp:" + std::to_string(t.where.line())), std::string::npos) << line;
  EXPECT_NE(line.find("age 1520 ms"), std::string::npos) << line;
  EXPECT_NE(line.find("cancelling: "), std::string::npos) << line;
  EXPECT_NE(line.find("deploy"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
}

TEST(task_info, an_unnamed_uncancelled_task_prints_without_a_reason)
{
  arc::task_info t;
  t.group = "g";
  std::ostringstream os;
  os << t;
  EXPECT_NE(os.str().find("g/(unnamed) #0"), std::string::npos) << os.str();
  EXPECT_NE(os.str().find(", running"), std::string::npos) << os.str();
  EXPECT_EQ(os.str().find(": "), std::string::npos) << os.str();
}

} // namespace
