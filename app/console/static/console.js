// Draws every <canvas data-chart="ID"> from the JSON in <script type="application/json" id="ID">
// (labels + datasets with a colour each). No inline scripts: the console's Content-Security-Policy forbids them.
(function () {
  "use strict";
  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var percent = canvas.dataset.percent === "1";
    var chart = new Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (d) {
          return { label: d.label, data: d.data, borderColor: d.color, backgroundColor: d.color,
                   pointRadius: 2, borderWidth: 2, tension: 0 };
        })
      },
      options: {
        animation: false, maintainAspectRatio: false, responsive: true,
        scales: {
          y: { min: 0, max: 1, ticks: { color: "#1f2328", callback: function (v) { return percent ? Math.round(v * 100) + " %" : v; } } },
          x: { ticks: { color: "#1f2328", maxTicksLimit: 10 } }
        },
        plugins: { legend: { labels: { color: "#1f2328" } } }
      }
    });
    canvas.dataset.drawn = String(chart.data.datasets.length);
  }
  function drawAll(root) { (root || document).querySelectorAll("canvas[data-chart]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
}());
