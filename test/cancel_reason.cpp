// Tests for arc/cancel_reason.hpp: the reason value, its kinds, the factories
// in arc::reason, and how a reason and its cause chain print.
#include <arc/cancel_reason.hpp>

#include <arc/error.hpp>

#include <gtest/gtest.h>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using clock_type = arc::cancel_reason::clock;

// A caller outside the test bodies, to check how a function name prints.
namespace client {
int fetch_line = 0;
arc::cancel_reason fetch() { fetch_line = __LINE__; return arc::reason::timeout(5s); }
} // namespace client

namespace {

struct my_tag
{
  int v = 0;
};

struct other_tag
{
  int v = 0;
};

// Counts the live tags that are not moved-from husks.
std::atomic<int> live_tags{0};

struct counted_tag
{
  bool owns = true;
  counted_tag() { ++live_tags; }
  counted_tag(const counted_tag& other) : owns(other.owns)
  {
    if (owns)
      ++live_tags;
  }
  counted_tag(counted_tag&& other) noexcept : owns(std::exchange(other.owns, false)) {}
  counted_tag& operator=(const counted_tag&) = delete;
  ~counted_tag()
  {
    if (owns)
      --live_tags;
  }
};

std::vector<std::string> split(std::string_view s, std::string_view sep)
{
  std::vector<std::string> parts;
  for (;;)
  {
    const auto at = s.find(sep);
    parts.emplace_back(s.substr(0, at));
    if (at == std::string_view::npos)
      return parts;
    s.remove_prefix(at + sep.size());
  }
}

std::string file_base()
{
  return "cancel_reason.cpp";
}

} // namespace

// --- The empty reason ---------------------------------------------------------

TEST(cancel_reason, a_default_reason_is_empty_and_means_not_cancelled)
{
  const arc::cancel_reason r;
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.kind(), arc::reason_kind::unspecified);
  EXPECT_TRUE(r.message().empty());
  EXPECT_EQ(r.where().line(), 0u);
  EXPECT_EQ(r.when(), clock_type::time_point());
  EXPECT_EQ(r.deadline(), clock_type::time_point());
  EXPECT_EQ(r.signal_number(), 0);
  EXPECT_FALSE(r.has_tag());
  EXPECT_EQ(r.tag<int>(), nullptr);
  EXPECT_TRUE(r.cause().empty());
  EXPECT_TRUE(r.root().empty());
  EXPECT_FALSE(r.code());
  EXPECT_EQ(r, arc::cancel_reason());
}

TEST(cancel_reason, an_empty_reason_prints_none)
{
  EXPECT_EQ(arc::to_string(arc::cancel_reason()), "none");
  EXPECT_EQ(arc::to_string(arc::cancel_reason(), arc::reason_format::multiline), "none");
  std::ostringstream os;
  os << arc::cancel_reason();
  EXPECT_EQ(os.str(), "none");
}

// --- Factories ----------------------------------------------------------------

TEST(cancel_reason, user_sets_kind_and_message)
{
  const auto r = arc::reason::user("stop");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r.empty());
  EXPECT_EQ(r.kind(), arc::reason_kind::user);
  EXPECT_EQ(r.message(), "stop");
  EXPECT_FALSE(r.has_tag());
  EXPECT_TRUE(r.cause().empty());
  EXPECT_EQ(r.deadline(), clock_type::time_point());
  EXPECT_EQ(r.signal_number(), 0);
}

TEST(cancel_reason, user_without_a_message_has_an_empty_message)
{
  const auto r = arc::reason::user();
  EXPECT_EQ(r.kind(), arc::reason_kind::user);
  EXPECT_TRUE(r.message().empty());
}

TEST(cancel_reason, user_with_a_tag_carries_the_tag)
{
  const auto r = arc::reason::user("stop", my_tag{7});
  EXPECT_EQ(r.kind(), arc::reason_kind::user);
  EXPECT_EQ(r.message(), "stop");
  EXPECT_TRUE(r.has_tag());
  ASSERT_NE(r.tag<my_tag>(), nullptr);
  EXPECT_EQ(r.tag<my_tag>()->v, 7);
}

TEST(cancel_reason, tag_of_the_wrong_type_is_null)
{
  const auto r = arc::reason::user("stop", my_tag{7});
  EXPECT_EQ(r.tag<other_tag>(), nullptr);
  EXPECT_EQ(r.tag<int>(), nullptr);
  EXPECT_NE(r.tag<my_tag>(), nullptr);
}

TEST(cancel_reason, a_reason_without_a_tag_has_no_tag_of_any_type)
{
  const auto r = arc::reason::user("stop");
  EXPECT_EQ(r.tag<my_tag>(), nullptr);
  EXPECT_EQ(r.tag<int>(), nullptr);
}

TEST(cancel_reason, a_tag_passed_as_an_lvalue_is_copied)
{
  my_tag t{3};
  const auto r = arc::reason::shutdown("bye", t);
  t.v = 4;
  ASSERT_NE(r.tag<my_tag>(), nullptr);
  EXPECT_EQ(r.tag<my_tag>()->v, 3);
}

TEST(cancel_reason, every_factory_with_a_tag_carries_it)
{
  const auto tp = clock_type::now() + 1h;
  const arc::cancel_reason tagged[] = {
    arc::reason::user("u", my_tag{1}),
    arc::reason::timeout(5s, my_tag{2}),
    arc::reason::timeout(tp, my_tag{3}),
    arc::reason::shutdown("s", my_tag{4}),
    arc::reason::signal(15, my_tag{5}),
  };
  const arc::reason_kind kinds[] = {arc::reason_kind::user, arc::reason_kind::timeout,
    arc::reason_kind::timeout, arc::reason_kind::shutdown, arc::reason_kind::signal};
  for (int i = 0; i < 5; ++i)
  {
    SCOPED_TRACE(i);
    EXPECT_EQ(tagged[i].kind(), kinds[i]);
    ASSERT_NE(tagged[i].tag<my_tag>(), nullptr);
    EXPECT_EQ(tagged[i].tag<my_tag>()->v, i + 1);
  }
  EXPECT_EQ(tagged[0].message(), "u");
  EXPECT_EQ(tagged[1].deadline(), tagged[1].when() + 5s);
  EXPECT_EQ(tagged[2].deadline(), tp);
  EXPECT_EQ(tagged[3].message(), "s");
  EXPECT_EQ(tagged[4].signal_number(), 15);
}

TEST(cancel_reason, shutdown_sets_kind_and_message)
{
  const auto r = arc::reason::shutdown("draining");
  EXPECT_EQ(r.kind(), arc::reason_kind::shutdown);
  EXPECT_EQ(r.message(), "draining");
  EXPECT_TRUE(r.cause().empty());
}

TEST(cancel_reason, timeout_after_a_duration_has_a_deadline_of_when_plus_that_duration)
{
  const auto r = arc::reason::timeout(5s);
  EXPECT_EQ(r.kind(), arc::reason_kind::timeout);
  EXPECT_EQ(r.deadline(), r.when() + 5s);
  EXPECT_TRUE(r.message().empty());
}

TEST(cancel_reason, timeout_at_a_time_point_has_that_deadline)
{
  const auto tp = clock_type::now() + 1h;
  const auto r = arc::reason::timeout(tp);
  EXPECT_EQ(r.kind(), arc::reason_kind::timeout);
  EXPECT_EQ(r.deadline(), tp);
}

TEST(cancel_reason, signal_carries_the_signal_number)
{
  const auto r = arc::reason::signal(15);
  EXPECT_EQ(r.kind(), arc::reason_kind::signal);
  EXPECT_EQ(r.signal_number(), 15);
  EXPECT_TRUE(r.message().empty());
  EXPECT_EQ(r.deadline(), clock_type::time_point());
}

TEST(cancel_reason, parent_has_its_argument_as_cause_and_root)
{
  const auto root = arc::reason::signal(15);
  const auto r = arc::reason::parent(root);
  EXPECT_EQ(r.kind(), arc::reason_kind::parent);
  EXPECT_EQ(r.cause(), root);
  EXPECT_EQ(r.root(), root);
  EXPECT_EQ(root.root(), root);
  // arc derives parent reasons; their cause says where.
  EXPECT_EQ(r.where().line(), 0u);
}

TEST(cancel_reason, root_follows_every_hop_of_the_chain)
{
  const auto root = arc::reason::user("first");
  const auto r = arc::reason::parent(arc::reason::parent(arc::reason::parent(root)));
  EXPECT_EQ(r.root(), root);
  EXPECT_EQ(r.cause().cause().cause(), root);
  EXPECT_TRUE(root.cause().empty());
}

TEST(cancel_reason, escalated_has_the_request_it_lets_through_as_cause)
{
  const auto request = arc::reason::user("again");
  const auto r = arc::reason::escalated(request);
  EXPECT_EQ(r.kind(), arc::reason_kind::escalated);
  EXPECT_EQ(r.cause(), request);
  EXPECT_EQ(r.root(), request);
}

TEST(cancel_reason, shield_deadline_carries_the_deadline)
{
  const auto tp = clock_type::now() + 100ms;
  const auto r = arc::reason::shield_deadline(tp);
  EXPECT_EQ(r.kind(), arc::reason_kind::shield_deadline);
  EXPECT_EQ(r.deadline(), tp);
  EXPECT_TRUE(r.cause().empty());
}

TEST(cancel_reason, unspecified_is_one_shared_value)
{
  const auto& a = arc::reason::unspecified();
  const auto& b = arc::reason::unspecified();
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(a, b);
  ASSERT_TRUE(a);
  EXPECT_EQ(a.kind(), arc::reason_kind::unspecified);
  EXPECT_TRUE(a.message().empty());
  EXPECT_EQ(a.where().line(), 0u);
  const arc::cancel_reason copy = a;
  EXPECT_EQ(copy, arc::reason::unspecified());
}

TEST(cancel_reason, unspecified_differs_from_the_empty_reason)
{
  EXPECT_NE(arc::reason::unspecified(), arc::cancel_reason());
  EXPECT_TRUE(arc::reason::unspecified().code());
}

// --- who and when -------------------------------------------------------------

TEST(cancel_reason, where_names_the_callers_line_not_arcs)
{
  const auto r = arc::reason::user("stop"); const auto line = __LINE__;
  EXPECT_STREQ(r.where().file_name(), __FILE__);
  EXPECT_EQ(r.where().line(), static_cast<std::uint_least32_t>(line));
  EXPECT_NE(std::string_view(r.where().function_name()).find("TestBody"), std::string_view::npos);
}

TEST(cancel_reason, every_factory_records_the_callers_location)
{
  const auto tp = clock_type::now() + 1h;
  struct site
  {
    arc::cancel_reason r;
    int line;
  };
  const site sites[] = {
    {arc::reason::user(), __LINE__},
    {arc::reason::user("m", my_tag{}), __LINE__},
    {arc::reason::timeout(5s), __LINE__},
    {arc::reason::timeout(5s, my_tag{}), __LINE__},
    {arc::reason::timeout(tp), __LINE__},
    {arc::reason::timeout(tp, my_tag{}), __LINE__},
    {arc::reason::shutdown(), __LINE__},
    {arc::reason::shutdown("m", my_tag{}), __LINE__},
    {arc::reason::signal(2), __LINE__},
    {arc::reason::signal(2, my_tag{}), __LINE__},
    {arc::reason::shield_deadline(tp), __LINE__},
  };
  for (const auto& s : sites)
  {
    SCOPED_TRACE(s.line);
    EXPECT_STREQ(s.r.where().file_name(), __FILE__);
    EXPECT_EQ(s.r.where().line(), static_cast<std::uint_least32_t>(s.line));
  }
}

TEST(cancel_reason, when_is_the_moment_the_factory_ran)
{
  const auto before = clock_type::now();
  const auto r = arc::reason::user("stop");
  const auto after = clock_type::now();
  EXPECT_LE(before, r.when());
  EXPECT_LE(r.when(), after);
}

TEST(cancel_reason, a_derived_reason_has_its_own_when)
{
  const auto root = arc::reason::user("stop");
  const auto before = clock_type::now();
  const auto r = arc::reason::parent(root);
  const auto after = clock_type::now();
  EXPECT_LE(before, r.when());
  EXPECT_LE(r.when(), after);
  EXPECT_LE(root.when(), r.when());
}

// --- code() -------------------------------------------------------------------

TEST(cancel_reason, code_maps_every_kind_to_its_arc_error)
{
  const auto tp = clock_type::now();
  const auto root = arc::reason::user();
  EXPECT_EQ(arc::reason::user().code(), arc::error::cancelled);
  EXPECT_EQ(arc::reason::unspecified().code(), arc::error::cancelled);
  EXPECT_EQ(arc::reason::timeout(5s).code(), arc::error::timed_out);
  EXPECT_EQ(arc::reason::timeout(tp).code(), arc::error::timed_out);
  EXPECT_EQ(arc::reason::shutdown().code(), arc::error::shutdown);
  EXPECT_EQ(arc::reason::signal(15).code(), arc::error::signalled);
  EXPECT_EQ(arc::reason::parent(root).code(), arc::error::parent_cancelled);
  EXPECT_EQ(arc::reason::shield_deadline(tp).code(), arc::error::shield_deadline_exceeded);
  EXPECT_EQ(arc::reason::escalated(root).code(), arc::error::escalated);
}

TEST(cancel_reason, code_is_in_the_arc_category_and_means_operation_canceled)
{
  const auto ec = arc::reason::signal(15).code();
  EXPECT_STREQ(ec.category().name(), "arc");
  EXPECT_EQ(ec, boost::system::errc::operation_canceled);
}

// --- Identity and sharing -----------------------------------------------------

TEST(cancel_reason, copies_compare_equal)
{
  const auto r = arc::reason::user("stop", my_tag{1});
  const arc::cancel_reason copy = r;
  arc::cancel_reason assigned;
  assigned = r;
  EXPECT_EQ(copy, r);
  EXPECT_EQ(assigned, r);
  EXPECT_EQ(copy.message(), "stop");
  EXPECT_EQ(copy.tag<my_tag>(), r.tag<my_tag>());
}

TEST(cancel_reason, distinct_events_do_not_compare_equal_even_when_alike)
{
  const auto a = arc::reason::user("stop");
  const auto b = arc::reason::user("stop");
  EXPECT_NE(a, b);
  EXPECT_NE(a, arc::cancel_reason());
}

TEST(cancel_reason, moving_leaves_the_source_empty_and_keeps_the_event)
{
  auto r = arc::reason::user("stop");
  const arc::cancel_reason keep = r;
  arc::cancel_reason moved = std::move(r);
  EXPECT_EQ(moved, keep);
  EXPECT_TRUE(r.empty());
  arc::cancel_reason assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned, keep);
  EXPECT_TRUE(moved.empty());
}

TEST(cancel_reason, assigning_over_a_reason_releases_the_old_one)
{
  live_tags = 0;
  {
    auto r = arc::reason::user("old", counted_tag{});
    EXPECT_EQ(live_tags.load(), 1);
    r = arc::reason::user("new");
    EXPECT_EQ(live_tags.load(), 0);
    EXPECT_EQ(r.message(), "new");
    auto s = arc::reason::user("old2", counted_tag{});
    EXPECT_EQ(live_tags.load(), 1);
    s = std::move(r);
    EXPECT_EQ(live_tags.load(), 0);
    EXPECT_EQ(s.message(), "new");
  }
  EXPECT_EQ(live_tags.load(), 0);
}

TEST(cancel_reason, self_assignment_keeps_the_reason)
{
  auto r = arc::reason::user("stop");
  const arc::cancel_reason keep = r;
  auto& alias = r;
  r = alias;
  EXPECT_EQ(r, keep);
  r = std::move(alias);
  EXPECT_EQ(r, keep);
  EXPECT_EQ(r.message(), "stop");
}

TEST(cancel_reason, copying_one_reason_across_threads_is_safe_and_frees_it_once)
{
  live_tags = 0;
  constexpr int threads = 4;
  constexpr int copies = 20000;
  {
    auto r = arc::reason::user("shared", counted_tag{});
    ASSERT_EQ(live_tags.load(), 1);
    std::atomic<int> mismatches{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back(
          [&go, &mismatches, mine = r]
          {
            while (!go.load())
              std::this_thread::yield();
            for (int i = 0; i < copies; ++i)
            {
              arc::cancel_reason copy = mine;
              arc::cancel_reason other;
              other = copy;
              if (other != mine || other.message() != "shared")
                ++mismatches;
            }
          });
    // The threads' captured copies become the only owners: whichever finishes
    // last frees the reason.
    r = arc::cancel_reason();
    EXPECT_EQ(live_tags.load(), 1);
    go = true;
    for (auto& t : pool)
      t.join();
    EXPECT_EQ(mismatches.load(), 0);
    pool.clear();
  }
  EXPECT_EQ(live_tags.load(), 0);
}

TEST(cancel_reason, a_long_cause_chain_is_destroyed_without_deep_recursion)
{
  live_tags = 0;
  constexpr int hops = 100000;
  auto chain = arc::reason::user("root", counted_tag{});
  const auto root = chain;
  for (int i = 0; i < hops; ++i)
    chain = arc::reason::parent(std::move(chain));
  EXPECT_EQ(chain.root(), root);
  EXPECT_EQ(chain.kind(), arc::reason_kind::parent);

  // Destroy the chain on a thread with a small stack: a recursive release of
  // 100000 hops would overflow it, an iterative one does not.
  struct job
  {
    arc::cancel_reason chain;
  };
  auto* j = new job{std::move(chain)};
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
  pthread_t th;
  ASSERT_EQ(pthread_create(&th, &attr,
                [](void* p) -> void*
                {
                  delete static_cast<job*>(p);
                  return nullptr;
                },
                j),
      0);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(pthread_join(th, nullptr), 0);

  EXPECT_EQ(live_tags.load(), 1); // root still holds it
  EXPECT_EQ(root.message(), "root");
  EXPECT_TRUE(root.cause().empty());
}

TEST(cancel_reason, a_chain_shared_by_two_reasons_survives_the_release_of_one)
{
  const auto root = arc::reason::user("root");
  auto mid = arc::reason::parent(root);
  auto a = arc::reason::parent(mid);
  auto b = arc::reason::escalated(mid);
  mid = arc::cancel_reason();
  a = arc::cancel_reason();
  ASSERT_EQ(b.cause().kind(), arc::reason_kind::parent);
  EXPECT_EQ(b.cause().cause(), root);
  EXPECT_EQ(b.root().message(), "root");
}

// --- Printing -----------------------------------------------------------------

TEST(reason_kind, every_kind_has_its_name)
{
  EXPECT_EQ(arc::to_string(arc::reason_kind::user), "user");
  EXPECT_EQ(arc::to_string(arc::reason_kind::timeout), "timeout");
  EXPECT_EQ(arc::to_string(arc::reason_kind::shutdown), "shutdown");
  EXPECT_EQ(arc::to_string(arc::reason_kind::signal), "signal");
  EXPECT_EQ(arc::to_string(arc::reason_kind::parent), "parent");
  EXPECT_EQ(arc::to_string(arc::reason_kind::shield_deadline), "shield_deadline");
  EXPECT_EQ(arc::to_string(arc::reason_kind::escalated), "escalated");
  EXPECT_EQ(arc::to_string(arc::reason_kind::unspecified), "unspecified");
}

TEST(reason_kind, streams_as_its_name)
{
  std::ostringstream os;
  os << arc::reason_kind::shield_deadline << ' ' << arc::reason_kind::user;
  EXPECT_EQ(os.str(), "shield_deadline user");
}

TEST(cancel_reason, a_user_reason_prints_kind_message_file_line_and_function)
{
  const auto r = arc::reason::user("stop"); const auto line = __LINE__;
  EXPECT_EQ(arc::to_string(r),
      "user \"stop\" at " + file_base() + ":" + std::to_string(line)
          + " in cancel_reason_a_user_reason_prints_kind_message_file_line_and_function_Test::TestBody()");
}

TEST(cancel_reason, a_timeout_prints_the_duration_it_was_given)
{
  const auto r = client::fetch();
  EXPECT_EQ(arc::to_string(r),
      "timeout (deadline 5s) at " + file_base() + ":" + std::to_string(client::fetch_line)
          + " in client::fetch()");
}

TEST(cancel_reason, timeout_durations_print_in_their_natural_unit)
{
  EXPECT_EQ(arc::to_string(arc::reason::timeout(250ms)).rfind("timeout (deadline 250ms) at ", 0), 0u);
  EXPECT_EQ(arc::to_string(arc::reason::timeout(1500us)).rfind("timeout (deadline 1500us) at ", 0), 0u);
  EXPECT_EQ(arc::to_string(arc::reason::timeout(7ns)).rfind("timeout (deadline 7ns) at ", 0), 0u);
  // A deadline measured rather than given reads in its largest unit.
  const auto when = std::chrono::steady_clock::now() + 2'123'456'789ns;
  const std::string measured = arc::to_string(arc::reason::shield_deadline(when));
  EXPECT_NE(measured.find("(deadline in 2.12"), std::string::npos) << measured;
  EXPECT_EQ(measured.find("ns)"), std::string::npos) << measured;
  EXPECT_EQ(arc::to_string(arc::reason::timeout(2min)).rfind("timeout (deadline 120s) at ", 0), 0u);
}

TEST(cancel_reason, a_timeout_at_a_time_point_prints_the_deadline_relative_to_when)
{
  const auto future = arc::reason::timeout(clock_type::now() + 1h);
  EXPECT_NE(arc::to_string(future).find("timeout (deadline in "), std::string::npos)
      << arc::to_string(future);
  const auto past = arc::reason::timeout(clock_type::now() - 1h);
  const auto text = arc::to_string(past);
  EXPECT_EQ(text.rfind("timeout (deadline ", 0), 0u) << text;
  EXPECT_NE(text.find(" ago) at "), std::string::npos) << text;
}

TEST(cancel_reason, a_signal_prints_its_number_and_name)
{
  const auto r = arc::reason::signal(15); const auto line = __LINE__;
  EXPECT_EQ(arc::to_string(r),
      "signal 15 (SIGTERM) at " + file_base() + ":" + std::to_string(line)
          + " in cancel_reason_a_signal_prints_its_number_and_name_Test::TestBody()");
}

TEST(cancel_reason, an_unknown_signal_prints_its_number_only)
{
  const auto text = arc::to_string(arc::reason::signal(1000));
  EXPECT_EQ(text.rfind("signal 1000 at ", 0), 0u) << text;
}

TEST(cancel_reason, a_shutdown_prints_its_message)
{
  const auto text = arc::to_string(arc::reason::shutdown("draining"));
  EXPECT_EQ(text.rfind("shutdown \"draining\" at " + file_base() + ":", 0), 0u) << text;
}

TEST(cancel_reason, a_tagged_reason_says_it_is_tagged)
{
  const auto text = arc::to_string(arc::reason::user("stop", my_tag{7}));
  EXPECT_EQ(text.rfind("user \"stop\" [tagged] at ", 0), 0u) << text;
}

TEST(cancel_reason, unspecified_prints_its_kind_only)
{
  EXPECT_EQ(arc::to_string(arc::reason::unspecified()), "unspecified");
}

TEST(cancel_reason, a_chain_prints_newest_first_joined_by_arrows_on_one_line)
{
  const auto root = arc::reason::signal(15); const auto line = __LINE__;
  const auto chain = arc::reason::escalated(arc::reason::parent(root));
  const auto text = arc::to_string(chain, arc::reason_format::line);
  EXPECT_EQ(text.find('\n'), std::string::npos);
  const auto hops = split(text, " <- ");
  ASSERT_EQ(hops.size(), 3u) << text;
  EXPECT_TRUE(hops[0] == "escalated" || hops[0].rfind("escalated at ", 0) == 0) << hops[0];
  EXPECT_EQ(hops[1], "parent");
  EXPECT_EQ(hops[2],
      "signal 15 (SIGTERM) at " + file_base() + ":" + std::to_string(line)
          + " in cancel_reason_a_chain_prints_newest_first_joined_by_arrows_on_one_line_Test::TestBody()");
  EXPECT_EQ(arc::to_string(chain), text) << "line is the default format";
}

TEST(cancel_reason, a_chain_prints_one_hop_per_line_in_multiline_format)
{
  const auto root = arc::reason::signal(15);
  const auto chain = arc::reason::escalated(arc::reason::parent(root));
  const auto text = arc::to_string(chain, arc::reason_format::multiline);
  const auto lines = split(text, "\n");
  ASSERT_EQ(lines.size(), 3u) << text;
  const auto hops = split(arc::to_string(chain, arc::reason_format::line), " <- ");
  ASSERT_EQ(hops.size(), 3u);
  EXPECT_EQ(lines[0], hops[0]);
  EXPECT_EQ(lines[1], "  <- " + hops[1]);
  EXPECT_EQ(lines[2], "  <- " + hops[2]);
}

TEST(cancel_reason, streaming_prints_the_same_as_to_string)
{
  const auto chain = arc::reason::parent(arc::reason::timeout(5s, my_tag{1}));
  std::ostringstream os;
  os << chain;
  EXPECT_EQ(os.str(), arc::to_string(chain));
  EXPECT_EQ(os.str().rfind("parent <- timeout (deadline 5s) [tagged] at ", 0), 0u) << os.str();
}
