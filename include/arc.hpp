// arc: Asio Reasoned Cancellation
#ifndef ARC_HPP
#define ARC_HPP

#include <arc/bind_cancel.hpp>
#include <arc/cancel_after.hpp>
#include <arc/cancel_guard.hpp>
#include <arc/cancel_reason.hpp>
#include <arc/cancel_source.hpp>
#include <arc/cancellation_signal.hpp>
#include <arc/co_spawn.hpp>
#include <arc/error.hpp>
#include <arc/persistent_task_group.hpp>
#include <arc/reasoned.hpp>
#include <arc/registry.hpp>
#include <arc/shield.hpp>
#include <arc/shield_executor.hpp>
#include <arc/shutdown_report.hpp>
#include <arc/task_info.hpp>

#endif
