#include "cli/plot.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "genai/error.hpp"

namespace genai::cli {

void require_plot_path(const std::string& who, const std::string& png) {
  if (png.find('\'') != std::string::npos)
    throw ArgumentError(who + ": --plot path must not contain a single quote: " + png);
}

void gnuplot(const std::string& who, const std::string& png, const std::string& script) {
  FILE* gp = popen("gnuplot", "w");
  if (!gp) throw Error(who + ": cannot run gnuplot");
  std::fputs(script.c_str(), gp);
  if (pclose(gp) != 0)
    throw Error(who + ": gnuplot failed to draw " + png + " (is gnuplot installed?)");
}

void plot_samples(const std::string& who, const std::string& png, const std::vector<float>& xy,
                  double extent, const std::function<double(double, double)>& density,
                  const std::string& title) {
  require_plot_path(who, png);
  const std::string samples = png + ".samples.dat", grid = png + ".density.dat";
  {
    std::ofstream f(samples);
    for (std::size_t r = 0; r + 1 < xy.size(); r += 2) f << xy[r] << ' ' << xy[r + 1] << '\n';
    std::ofstream g(grid);
    const int cells = 200;
    for (int a = 0; a < cells; ++a) {
      for (int b = 0; b < cells; ++b) {
        const double x = -extent + 2 * extent * (a + 0.5) / cells;
        const double y = -extent + 2 * extent * (b + 0.5) / cells;
        g << x << ' ' << y << ' ' << density(x, y) << '\n';
      }
      g << '\n';
    }
    if (!f || !g) throw Error(who + ": cannot write " + samples + " / " + grid);
  }
  gnuplot(who, png,
          detail::concat("set terminal pngcairo size 900,900\nset output '", png,
                         "'\nset size square\nset xrange [", -extent, ":", extent,
                         "]\nset yrange [", -extent, ":", extent, "]\nset title '", title,
                         "' noenhanced\nset palette defined (0 'white', 1 '#9ecae1', 2 "
                         "'#08306b')\nplot '",
                         grid, "' with image notitle, '", samples,
                         "' with dots lc rgb '#d62728' notitle\n"));
}

void plot_curves(const std::string& who, const std::string& png, const std::vector<Curve>& curves,
                 const std::string& title, const std::string& xlabel, const std::string& ylabel,
                 bool log_y) {
  require_plot_path(who, png);
  const std::string data = png + ".dat";
  {
    std::ofstream f(data);
    for (const Curve& c : curves) {
      f << "# " << c.name << '\n';
      for (std::size_t i = 0; i < c.x.size() && i < c.y.size(); ++i) f << c.x[i] << ' ' << c.y[i] << '\n';
      f << "\n\n";
    }
    if (!f) throw Error(who + ": cannot write " + data);
  }
  std::string plot;
  for (std::size_t i = 0; i < curves.size(); ++i)
    plot += detail::concat(i ? ", " : "plot ", "'", data, "' index ", i, " with lines lw 2 title '",
                           curves[i].name, "' noenhanced");
  gnuplot(who, png,
          detail::concat("set terminal pngcairo size 1000,600\nset output '", png,
                         "'\nset title '", title, "' noenhanced\nset xlabel '", xlabel,
                         "'\nset ylabel '", ylabel, "'\nset grid\nset key top right\n",
                         log_y ? "set logscale y\n" : "", plot, "\n"));
}

namespace {
// s inside a gnuplot single-quoted string: a quote doubled.
std::string quoted(const std::string& s) {
  std::string q;
  for (const char ch : s) q += ch == '\'' ? std::string("''") : std::string(1, ch);
  return q;
}
}  // namespace

void plot_panels(const std::string& who, const std::string& png, const std::vector<Panel>& panels,
                 int cols, const std::string& title) {
  require_plot_path(who, png);
  const std::string data = png + ".dat";
  static const char* colours[] = {"#b0b0b0", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"};
  std::string script = detail::concat(
      "set terminal pngcairo size ", 480 * cols, ",",
      440 * ((static_cast<int>(panels.size()) + cols - 1) / cols) + 40, " font ',9'\nset output '", png,
      "'\nset multiplot layout ", (static_cast<int>(panels.size()) + cols - 1) / cols, ",", cols,
      " title '", quoted(title), "' noenhanced\nset size ratio -1\nset key top left\n");
  {
    std::ofstream f(data);
    int block = 0;
    for (const Panel& p : panels) {
      double lo[2] = {1e300, 1e300}, hi[2] = {-1e300, -1e300};
      if (!p.sets.empty())
        for (std::size_t i = 0; i + 1 < p.sets[0].xy.size(); i += 2)
          for (int a = 0; a < 2; ++a) {
            lo[a] = std::min(lo[a], double(p.sets[0].xy[i + a]));
            hi[a] = std::max(hi[a], double(p.sets[0].xy[i + a]));
          }
      std::string plot;
      auto add = [&](const std::string& name, const std::vector<float>& xy, const std::string& style) {
        f << "# " << p.title << ": " << name << '\n';
        for (std::size_t i = 0; i + 1 < xy.size(); i += 2) f << xy[i] << ' ' << xy[i + 1] << '\n';
        f << "\n\n";
        plot += detail::concat(plot.empty() ? "plot " : ", ", "'", data, "' index ", block++, " ",
                               style, " title '", quoted(name), "' noenhanced");
      };
      for (std::size_t k = 0; k < p.sets.size(); ++k)
        add(p.sets[k].name, p.sets[k].xy,
            detail::concat(k > 0 && !p.paths.empty() ? "with points pt 7 ps 0.7" : "with dots",
                           " lc rgb '", colours[k % 5], "'"));
      for (std::size_t k = 0; k < p.paths.size(); ++k)
        add(k == 0 ? "paths" : "", p.paths[k], "with lines lw 1 lc rgb '#000000'");
      script += detail::concat("set title '", quoted(p.title), "' noenhanced\n");
      if (lo[0] <= hi[0]) {
        for (int a = 0; a < 2; ++a) {
          const double pad = 0.1 * std::max(hi[a] - lo[a], 1e-6);
          script += detail::concat("set ", a ? "yrange" : "xrange", " [", lo[a] - pad, ":",
                                   hi[a] + pad, "]\n");
        }
      }
      script += (plot.empty() ? std::string("plot NaN notitle") : plot) + "\n";
    }
    if (!f) throw Error(who + ": cannot write " + data);
  }
  gnuplot(who, png, script + "unset multiplot\n");
}

}  // namespace genai::cli
