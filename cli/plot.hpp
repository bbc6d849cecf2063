// Pictures drawn with gnuplot: 2-D samples over a density (`genai sample --plot`,
// `genai langevin --plot` and their demo steps) and the runner every picture goes through
// (also `genai pca --plot`).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace genai::cli {

// Refuses (ArgumentError) a picture path gnuplot cannot take inside '...': one with a single
// quote. Called before any file is written.
void require_plot_path(const std::string& who, const std::string& png);

// Runs gnuplot on `script`, which draws `png`; Error if gnuplot cannot run or fails. `who` (the
// command) starts every error message.
void gnuplot(const std::string& who, const std::string& png, const std::string& script);

// Writes the samples xy (x y pairs) beside `png` (<png>.samples.dat: x y per line) and `density`
// on a 200 x 200 grid of [-extent, extent]^2 (<png>.density.dat), then draws them with gnuplot:
// the density as an image, the samples as dots over it. The data files are written first, so
// they are there even when gnuplot is missing or fails (then Error). `who` (the command) starts
// every error message; a single quote in `png` is refused (ArgumentError), before any file.
void plot_samples(const std::string& who, const std::string& png, const std::vector<float>& xy,
                  double extent, const std::function<double(double x, double y)>& density,
                  const std::string& title);

// Curves y(x) (a loss against steps, say), one per series, as lines: the data first, beside
// the picture (<png>.dat: blocks "x y" per series, separated by two blank lines, the series'
// names in a comment line above each), then the picture; log_y draws y on a log scale.
struct Curve {
  std::string name;
  std::vector<double> x, y;
};
void plot_curves(const std::string& who, const std::string& png, const std::vector<Curve>& curves,
                 const std::string& title, const std::string& xlabel, const std::string& ylabel,
                 bool log_y = false);

// A grid of 2-D scatter panels (samples over their data, a path or two), `cols` panels a row.
// Each panel draws its point sets as dots -- the first in grey (the reference data, say), the
// others in colour (as points when the panel has paths: their ends, say) -- and its paths as
// lines, in the window of its first set (its bounding box widened by 10%; points outside it are
// clipped, so a far-off broken sample does not squash the picture). The data first, beside the picture (<png>.dat: one block per set and path, in
// panel order, separated by two blank lines, a comment line naming each), then the picture.
struct PointSet {
  std::string name;
  std::vector<float> xy;  // x y pairs
};
struct Panel {
  std::string title;
  std::vector<PointSet> sets;
  std::vector<std::vector<float>> paths;  // polylines, x y pairs
};
void plot_panels(const std::string& who, const std::string& png, const std::vector<Panel>& panels,
                 int cols, const std::string& title);

}  // namespace genai::cli
