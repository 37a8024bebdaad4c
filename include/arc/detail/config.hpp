// arc: Asio Reasoned Cancellation
#ifndef ARC_DETAIL_CONFIG_HPP
#define ARC_DETAIL_CONFIG_HPP

#include <boost/asio/version.hpp>

#if BOOST_ASIO_VERSION < 102600
#error "arc needs Boost.Asio 1.26 (Boost 1.81) or newer"
#endif

namespace boost::asio {
} // namespace boost::asio

namespace arc::detail {
namespace asio = boost::asio;
} // namespace arc::detail

#endif
