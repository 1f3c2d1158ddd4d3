// parse_json_text: nlohmann's exceptions turned into ember's message.
#include "train/json_text.h"

#include "core/error.h"

namespace ember {

nlohmann::json parse_json_text(std::string_view text, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail("{} is not valid JSON (error at byte {} of {})", what, e.byte, text.size());
  } catch (const nlohmann::json::exception&) {  // out_of_range: a number no type can hold
    fail("{} is not valid JSON (a number out of range)", what);
  }
}

}  // namespace ember
