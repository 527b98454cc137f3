// Draws the object page's relationship graph with the vendored cytoscape.js, from the page's JSON
// endpoint (the same visibility check as the page). Without this script the page lists the relationships.
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("graph");
  if (!box || typeof cytoscape !== "function") { return; }
  fetch(box.dataset.graphUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
    .then(function (answer) { if (!answer.ok) { throw new Error(answer.status); } return answer.json(); })
    .then(function (graph) {
      var fallback = box.querySelector(".graph-fallback");
      if (fallback) { fallback.remove(); }
      var partial = document.querySelector(".graph-partial");
      if (partial && !graph.complete) { partial.hidden = false; }
      var elements = graph.nodes.map(function (n) {
        return { group: "nodes", data: { id: n.id, label: n.name, type: n.type, hops: n.hops } };
      }).concat(graph.edges.map(function (e) {
        return { group: "edges", data: { id: e.id, source: e.source, target: e.target, label: e.relationship_type } };
      }));
      var cy = cytoscape({
        container: box,
        elements: elements,
        layout: { name: "preset" },
        maxZoom: 1.3,
        style: [
          { selector: "node", style: { "label": "data(label)", "font-size": 11, "text-wrap": "ellipsis", "text-max-width": 140,
                                      "background-color": "#5b6b7f", "color": "#1b1f24", "text-valign": "bottom" } },
          { selector: "node[hops = 0]", style: { "background-color": "#1a5fb4", "width": 38, "height": 38 } },
          { selector: "node[hops = 2]", style: { "background-color": "#9aa5b1" } },
          { selector: "edge", style: { "label": "data(label)", "font-size": 9, "curve-style": "bezier",
                                      "target-arrow-shape": "triangle", "line-color": "#8a949e", "target-arrow-color": "#8a949e",
                                      "text-background-color": "#ffffff", "text-background-opacity": 0.85 } }
        ],
        wheelSensitivity: 0.3
      });
      // The object in the middle, its neighbours on the first ring, theirs on the second.
      cy.layout({ name: "breadthfirst", circle: true, roots: cy.getElementById(box.dataset.center),
                  spacingFactor: 1.1, padding: 24, animate: false }).run();
      cy.on("tap", "node", function (event) {
        var id = event.target.id();
        if (id !== box.dataset.center) {
          window.location.href = "/console/objects/" + encodeURIComponent(id) + "?collection=" + encodeURIComponent(box.dataset.collection);
        }
      });
      box.dataset.nodes = String(cy.nodes().length);
      box.dataset.edges = String(cy.edges().length);
    })
    .catch(function () { box.dataset.failed = "true"; });
});
