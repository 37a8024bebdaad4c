// Tests for arc/error.hpp: the "arc" error category, which codes mean
// cancellation, and arc::cancelled_error.
#include <arc/error.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/errc.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <iterator>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using boost::system::error_code;

namespace {

const arc::error cancellation_codes[] = {
  arc::error::cancelled,
  arc::error::timed_out,
  arc::error::shutdown,
  arc::error::signalled,
  arc::error::parent_cancelled,
  arc::error::shield_deadline_exceeded,
  arc::error::escalated,
};

const arc::error other_codes[] = {
  arc::error::cancel_ignored,
  arc::error::group_closed,
  arc::error::already_started,
  arc::error::not_in_task,
  arc::error::no_executor,
  arc::error::shutdown_incomplete,
  arc::error::not_cancelled,
  arc::error::already_finished,
  arc::error::context_destroyed,
};

} // namespace

TEST(error, the_category_is_named_arc)
{
  EXPECT_STREQ(arc::error_category().name(), "arc");
  EXPECT_EQ(&arc::make_error_code(arc::error::timed_out).category(), &arc::error_category());
}

TEST(error, an_arc_error_converts_to_an_error_code_in_the_arc_category)
{
  const error_code ec = arc::error::group_closed;
  EXPECT_EQ(ec.value(), static_cast<int>(arc::error::group_closed));
  EXPECT_EQ(ec.category(), arc::error_category());
  EXPECT_EQ(ec, arc::make_error_code(arc::error::group_closed));
  EXPECT_EQ(ec, arc::error::group_closed);
  EXPECT_NE(ec, arc::error::already_started);
  EXPECT_TRUE(ec);
}

TEST(error, every_cancellation_code_is_equivalent_to_operation_canceled)
{
  for (auto e : cancellation_codes)
  {
    const error_code ec = arc::make_error_code(e);
    SCOPED_TRACE(ec.message());
    EXPECT_TRUE(ec == boost::system::errc::operation_canceled);
    EXPECT_EQ(ec.default_error_condition(),
        boost::system::errc::make_error_condition(boost::system::errc::operation_canceled));
    EXPECT_TRUE(arc::is_cancellation(ec));
  }
}

TEST(error, cancellation_codes_compare_with_std_errc_through_std_error_code)
{
  for (auto e : cancellation_codes)
  {
    const std::error_code ec = arc::make_error_code(e);
    SCOPED_TRACE(ec.message());
    EXPECT_TRUE(ec == std::errc::operation_canceled);
  }
}

TEST(error, misuse_and_outcome_codes_are_not_cancellations)
{
  for (auto e : other_codes)
  {
    const error_code ec = arc::make_error_code(e);
    SCOPED_TRACE(ec.message());
    EXPECT_FALSE(ec == boost::system::errc::operation_canceled);
    EXPECT_FALSE(arc::is_cancellation(ec));
    EXPECT_EQ(ec.default_error_condition().category(), arc::error_category());
  }
}

TEST(error, asio_operation_aborted_is_a_cancellation)
{
  EXPECT_TRUE(arc::is_cancellation(boost::asio::error::operation_aborted));
  EXPECT_TRUE(arc::is_cancellation(
      boost::system::errc::make_error_code(boost::system::errc::operation_canceled)));
}

TEST(error, success_and_unrelated_errors_are_not_cancellations)
{
  EXPECT_FALSE(arc::is_cancellation(error_code()));
  EXPECT_FALSE(arc::is_cancellation(boost::asio::error::eof));
  EXPECT_FALSE(arc::is_cancellation(boost::asio::error::connection_reset));
  EXPECT_FALSE(arc::is_cancellation(
      boost::system::errc::make_error_code(boost::system::errc::timed_out)));
}

TEST(error, a_timed_out_code_is_not_the_system_timed_out_condition)
{
  // timed_out is a cancellation: it says "a deadline cancelled the operation".
  const error_code ec = arc::error::timed_out;
  EXPECT_FALSE(ec == boost::system::errc::timed_out);
  EXPECT_TRUE(ec == boost::system::errc::operation_canceled);
}

TEST(error, every_code_has_a_distinct_non_empty_message)
{
  std::vector<arc::error> all(std::begin(cancellation_codes), std::end(cancellation_codes));
  all.insert(all.end(), std::begin(other_codes), std::end(other_codes));
  std::set<std::string> seen;
  for (auto e : all)
  {
    const auto message = arc::make_error_code(e).message();
    EXPECT_FALSE(message.empty()) << static_cast<int>(e);
    EXPECT_TRUE(seen.insert(message).second) << "duplicate message: " << message;
  }
  EXPECT_EQ(seen.size(), std::size(cancellation_codes) + std::size(other_codes));
}

TEST(error, an_unknown_value_still_has_a_message)
{
  const error_code ec(9999, arc::error_category());
  EXPECT_FALSE(ec.message().empty());
  EXPECT_FALSE(arc::is_cancellation(ec));
}

TEST(cancelled_error, is_catchable_as_system_error_with_the_reasons_code)
{
  const auto why = arc::reason::timeout(5s);
  try
  {
    throw arc::cancelled_error(why);
  }
  catch (const boost::system::system_error& e)
  {
    EXPECT_EQ(e.code(), arc::error::timed_out);
    EXPECT_TRUE(e.code() == boost::system::errc::operation_canceled);
    const auto* ce = dynamic_cast<const arc::cancelled_error*>(&e);
    ASSERT_NE(ce, nullptr);
    EXPECT_EQ(ce->reason(), why);
    return;
  }
  ADD_FAILURE() << "cancelled_error was not caught as system_error";
}

TEST(cancelled_error, is_catchable_as_cancelled_error_and_carries_the_reason)
{
  const auto why = arc::reason::user("stop");
  try
  {
    throw arc::cancelled_error(why);
  }
  catch (const arc::cancelled_error& e)
  {
    EXPECT_EQ(e.reason(), why);
    EXPECT_EQ(e.reason().message(), "stop");
    EXPECT_EQ(e.code(), arc::error::cancelled);
    return;
  }
  ADD_FAILURE() << "not caught";
}

TEST(cancelled_error, takes_its_code_from_the_reasons_kind)
{
  const auto root = arc::reason::signal(15);
  EXPECT_EQ(arc::cancelled_error(root).code(), arc::error::signalled);
  EXPECT_EQ(arc::cancelled_error(arc::reason::shutdown()).code(), arc::error::shutdown);
  EXPECT_EQ(arc::cancelled_error(arc::reason::parent(root)).code(), arc::error::parent_cancelled);
  EXPECT_EQ(arc::cancelled_error(arc::reason::escalated(root)).code(), arc::error::escalated);
  EXPECT_EQ(arc::cancelled_error(arc::reason::unspecified()).code(), arc::error::cancelled);
  EXPECT_EQ(arc::cancelled_error(arc::reason::shield_deadline(arc::cancel_reason::clock::now())).code(),
      arc::error::shield_deadline_exceeded);
}

TEST(cancelled_error, with_an_empty_reason_reports_cancelled)
{
  const arc::cancelled_error e{arc::cancel_reason()};
  EXPECT_EQ(e.code(), arc::error::cancelled);
  EXPECT_TRUE(e.reason().empty());
  EXPECT_TRUE(arc::is_cancellation(e.code()));
}

TEST(cancelled_error, with_an_explicit_code_keeps_that_code_and_the_reason)
{
  const auto why = arc::reason::user("stop");
  const arc::cancelled_error aborted(boost::asio::error::operation_aborted, why);
  EXPECT_EQ(aborted.code(), boost::asio::error::operation_aborted);
  EXPECT_EQ(aborted.reason(), why);

  const arc::cancelled_error timed_out(arc::error::timed_out, why);
  EXPECT_EQ(timed_out.code(), arc::error::timed_out);
  EXPECT_EQ(timed_out.reason(), why);

  const arc::cancelled_error empty(arc::error::shutdown, arc::cancel_reason());
  EXPECT_EQ(empty.code(), arc::error::shutdown);
  EXPECT_TRUE(empty.reason().empty());
}

TEST(cancelled_error, what_says_why)
{
  const auto why = arc::reason::user("stop");
  const arc::cancelled_error e(why);
  const std::string what = e.what();
  EXPECT_NE(what.find(arc::to_string(why)), std::string::npos) << what;
  EXPECT_NE(what.find(e.code().message()), std::string::npos) << what;
}

TEST(cancelled_error, copies_keep_the_reason)
{
  const auto why = arc::reason::signal(2);
  const arc::cancelled_error e(why);
  const arc::cancelled_error copy = e;
  EXPECT_EQ(copy.reason(), why);
  EXPECT_EQ(copy.code(), e.code());
  EXPECT_STREQ(copy.what(), e.what());
}

TEST(cancelled_error, assignment_takes_the_other_code_reason_and_what)
{
  const auto a = arc::reason::user("a");
  const auto b = arc::reason::shutdown("b");
  arc::cancelled_error e(a);
  const std::string before = e.what(); // made before the assignment
  const arc::cancelled_error other(b);
  e = other;
  EXPECT_EQ(e.reason(), b);
  EXPECT_EQ(e.code(), arc::error::shutdown);
  EXPECT_STREQ(e.what(), other.what());
  EXPECT_NE(before, e.what());
}

TEST(cancelled_error_concurrency, what_may_be_called_from_several_threads_at_once)
{
  const auto why = arc::reason::user("shared");
  for (int round = 0; round < 100; ++round)
  {
    // One exception object shared through exception_ptr copies, as a
    // completion handed to several waiters would be.
    const std::exception_ptr e = std::make_exception_ptr(arc::cancelled_error(why));
    std::vector<std::string> seen(4);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i != seen.size(); ++i)
      threads.emplace_back([&, i] {
        try
        {
          std::rethrow_exception(e);
        }
        catch (const arc::cancelled_error& x)
        {
          seen[i] = x.what();
        }
      });
    for (auto& t : threads)
      t.join();
    for (const auto& s : seen)
      ASSERT_EQ(s, seen[0]);
    EXPECT_NE(seen[0].find(arc::to_string(why)), std::string::npos);
  }
}
