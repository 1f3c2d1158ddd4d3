// A few SVG drawing helpers for ember's plots (train/plots.h): a document
// builder that appends elements as text, axis ticks at round numbers, and
// the blue-white-red colour scale of the positional heatmaps. No dependency:
// the output is plain SVG 1.1 that any browser or image viewer shows.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ember {

class Svg {
 public:
  Svg(double width, double height);
  // Text for the document's body; attributes are written as given.
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1.0);
  void polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke, double width,
                const std::string& extra = "");
  void circle(double x, double y, double r, const std::string& fill);
  void rect(double x, double y, double w, double h, const std::string& fill, const std::string& extra = "");
  // anchor: start | middle | end; rotate: degrees about (x, y).
  void text(double x, double y, const std::string& s, double size = 12, const std::string& anchor = "start",
            double rotate = 0, const std::string& extra = "");
  void raw(const std::string& element) { body_ += element; }
  std::string str() const;  // the whole document, <?xml ...?> to </svg>

 private:
  double width_, height_;
  std::string body_;
};

// &, <, >, " and ' as XML entities.
std::string xml_escape(const std::string& s);

// Round tick values covering [lo, hi] on a linear axis: about `count` of
// them, spaced 1, 2 or 5 times a power of ten.
std::vector<double> linear_ticks(double lo, double hi, int count = 6);
// Ticks for a log axis over [lo, hi] (lo > 0): 1, 2, 5 times powers of ten,
// or every integer multiple when the range spans less than a decade.
std::vector<double> log_ticks(double lo, double hi);
// A tick label: %g with at most 4 significant digits.
std::string tick_label(double v);

// The colour of v in [-1, 1] on a diverging scale: blue (-1), white (0), red (1), as "#rrggbb".
std::string diverging_colour(double v);

}  // namespace ember
