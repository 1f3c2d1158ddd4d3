// Parsing JSON that comes from a file: every way nlohmann's parser can
// reject text (bad syntax, a number too large for any type) becomes one
// ember::Error, so no library exception reaches a user.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ember {

// `what` names the text in the message: "<what> is not valid JSON (error at byte 12 of 80)".
nlohmann::json parse_json_text(std::string_view text, const std::string& what);

}  // namespace ember
