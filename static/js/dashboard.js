// The dashboard (segments.views_dashboard): no framework and no inline script, the
// pages will get a strict CSP.
//
// - Each <canvas data-dashboard-chart="KEY"> is drawn with Chart.js (vendored,
//   static/vendor/chartjs) from #dashboard-charts (json_script): {"currency",
//   "charts": {KEY: {"kind", "labels", "format", "dates", "horizontal", "stacked",
//   "datasets": [{"label", "data", "color", "dates", "stack"}]}}} (see
//   segments.dashboard.ChartSpec). The words come translated from the server;
//   numbers, money and dates are formatted here in the page's language
//   (document.documentElement.lang) with Intl. A drawn canvas gets
//   data-chart-drawn="true".
// - The filters: typing a day chooses "from - to" in the period select.
(function () {
  "use strict";

  function language() {
    return document.documentElement.lang || "pl";
  }

  function parseDay(iso) {
    var parts = String(iso).split("-");
    return new Date(Number(parts[0]), Number(parts[1]) - 1, Number(parts[2]));
  }

  function shortDay(iso) {
    return parseDay(iso).toLocaleDateString(language(), { day: "numeric", month: "short" });
  }

  function longDay(iso) {
    return parseDay(iso).toLocaleDateString(language(), {
      day: "numeric",
      month: "long",
      year: "numeric",
    });
  }

  // How a value reads: in full (tooltips) or short (axis ticks).
  function formatter(format, currency, short) {
    var lang = language();
    var options;
    if (format === "money") {
      options = short
        ? { style: "currency", currency: currency, notation: "compact", maximumFractionDigits: 1 }
        : { style: "currency", currency: currency, minimumFractionDigits: 2, maximumFractionDigits: 2 };
      var money = new Intl.NumberFormat(lang, options);
      return function (value) { return money.format(value); };
    }
    if (format === "percent") {
      var percent = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 });
      return function (value) { return percent.format(value / 100); };
    }
    var number = new Intl.NumberFormat(lang, short ? { notation: "compact", maximumFractionDigits: 1 } : {});
    return function (value) { return number.format(value); };
  }

  function withAlpha(color, alpha) {
    if (typeof color !== "string" || !/^#[0-9a-fA-F]{6}$/.test(color)) {
      return color;
    }
    var hex = Math.round(alpha * 255).toString(16);
    return color + (hex.length === 1 ? "0" + hex : hex);
  }

  function datasets(spec) {
    var many = spec.labels.length > 40;
    return spec.datasets.map(function (set, index) {
      var color = set.color || "#4338ca";
      var dataset = {
        label: set.label,
        data: set.data,
        backgroundColor: color,
        borderColor: color,
      };
      if (spec.kind === "line") {
        dataset.backgroundColor = withAlpha(color, 0.12);
        dataset.fill = index === 0;
        dataset.tension = 0.25;
        dataset.borderWidth = 2;
        dataset.pointRadius = many ? 0 : 2.5;
        dataset.pointHoverRadius = 4;
        if (index > 0) {
          dataset.borderDash = [6, 4];
        }
      } else if (spec.kind === "bar") {
        dataset.borderWidth = 0;
        dataset.borderRadius = 3;
        dataset.maxBarThickness = 42;
      } else {
        dataset.borderColor = "#ffffff";
        dataset.borderWidth = 2;
      }
      if (set.stack) {
        dataset.stack = set.stack;
      }
      return dataset;
    });
  }

  function config(spec, currency) {
    var full = formatter(spec.format, currency, false);
    var short = formatter(spec.format, currency, true);
    var labels = spec.labels;
    var tooltip = {
      callbacks: {
        title: function (items) {
          if (!items.length) {
            return "";
          }
          var label = labels[items[0].dataIndex];
          return spec.dates ? longDay(label) : label;
        },
        label: function (item) {
          var set = spec.datasets[item.datasetIndex];
          var value = spec.kind === "doughnut" ? item.parsed : item.parsed[spec.horizontal ? "x" : "y"];
          var text = set.label + ": " + full(value);
          if (set.dates && set.dates[item.dataIndex]) {
            text += " (" + longDay(set.dates[item.dataIndex]) + ")";
          }
          return text;
        },
      },
    };
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      locale: language(),
      plugins: {
        legend: {
          display: spec.datasets.length > 1 || spec.kind === "doughnut",
          position: spec.kind === "doughnut" ? "right" : "top",
          labels: { boxWidth: 12, boxHeight: 12 },
        },
        tooltip: tooltip,
      },
    };
    if (spec.kind !== "doughnut") {
      var valueAxis = {
        beginAtZero: true,
        stacked: spec.stacked,
        ticks: { callback: function (value) { return short(value); } },
        grid: { color: "#eef0f4" },
      };
      var categoryAxis = {
        stacked: spec.stacked,
        grid: { display: false },
        ticks: {
          autoSkip: true,
          maxRotation: 0,
          callback: function (value, index) {
            var label = labels[index];
            return spec.dates ? shortDay(label) : label;
          },
        },
      };
      if (spec.format === "percent") {
        valueAxis.max = 100;
      }
      options.indexAxis = spec.horizontal ? "y" : "x";
      options.scales = spec.horizontal
        ? { x: valueAxis, y: categoryAxis }
        : { x: categoryAxis, y: valueAxis };
      options.interaction = { mode: "index", intersect: false };
    }
    return {
      type: spec.kind,
      data: { labels: labels, datasets: datasets(spec) },
      options: options,
    };
  }

  function drawCharts() {
    var source = document.getElementById("dashboard-charts");
    if (!source || typeof window.Chart !== "function") {
      return;
    }
    var figures = JSON.parse(source.textContent);
    var canvases = document.querySelectorAll("canvas[data-dashboard-chart]");
    for (var i = 0; i < canvases.length; i += 1) {
      var canvas = canvases[i];
      var spec = figures.charts[canvas.getAttribute("data-dashboard-chart")];
      if (!spec) {
        continue;
      }
      new window.Chart(canvas, config(spec, figures.currency));
      canvas.setAttribute("data-chart-drawn", "true");
    }
  }

  function watchFilters() {
    var form = document.querySelector("[data-dashboard-filters]");
    if (!form) {
      return;
    }
    var period = form.querySelector("select[name='period']");
    var dates = form.querySelectorAll("input[type='date']");
    for (var i = 0; i < dates.length; i += 1) {
      dates[i].addEventListener("input", function () {
        if (period) {
          period.value = "custom";
        }
      });
    }
  }

  function start() {
    drawCharts();
    watchFilters();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
