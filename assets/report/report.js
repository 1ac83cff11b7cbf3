// rootforge image report: the zoomable treemaps. Inlined into the HTML file after d3-hierarchy's
// UMD build (window.d3); the data is the JSON in #rf-data. d3.treemap does the layout.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('rf-data').textContent);
  var map = document.getElementById('map');
  var crumbs = document.getElementById('crumbs');
  var trees = { dir: data.byDirectory, pkg: data.byPackage };
  var state = { kind: 'dir', path: [] };

  function fmt(n) {
    if (n >= 1073741824) return (n / 1073741824).toFixed(2) + ' GiB';
    if (n >= 1048576) return (n / 1048576).toFixed(1) + ' MiB';
    if (n >= 1024) return (n / 1024).toFixed(1) + ' KiB';
    return n + ' B';
  }
  function hue(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h % 360;
  }
  // The full path of a node of the current tree, from the names below the root.
  function fullPath(names) {
    if (state.kind === 'pkg') return names.length ? names[names.length - 1] : '/';
    return '/' + names.join('/');
  }
  function find(names) {
    var node = trees[state.kind];
    for (var i = 0; i < names.length; i++) {
      var next = null;
      for (var j = 0; node.c && j < node.c.length; j++) if (node.c[j].n === names[i]) next = node.c[j];
      if (!next) return null;
      node = next;
    }
    return node;
  }

  function render() {
    var node = find(state.path);
    if (!node) { state.path = []; node = trees[state.kind]; }
    var w = map.clientWidth, h = map.clientHeight;
    var root = d3.hierarchy(node, function (d) { return d.c; })
      .sum(function (d) { return d.v; })
      .sort(function (a, b) { return b.value - a.value || (a.data.n < b.data.n ? -1 : 1); });
    d3.treemap().size([w, h]).paddingOuter(2).paddingTop(function (d) { return d.depth === 0 ? 2 : 16; })
      .paddingInner(1).round(true).tile(d3.treemapSquarify)(root);
    map.textContent = '';
    map.setAttribute('data-path', fullPath(state.path));
    map.setAttribute('data-bytes', String(root.value));
    var frag = document.createDocumentFragment();
    root.descendants().forEach(function (d) {
      if (d.depth === 0 || d.depth > 2) return;
      var cw = d.x1 - d.x0, ch = d.y1 - d.y0;
      if (cw < 2 || ch < 2) return;
      var names = state.path.concat(d.ancestors().reverse().slice(1).map(function (a) { return a.data.n; }));
      var top = d.depth === 1 ? d : d.parent;
      var el = document.createElement('div');
      el.className = 'cell d' + d.depth + (d.children ? ' zoom' : '');
      el.style.left = d.x0 + 'px'; el.style.top = d.y0 + 'px';
      el.style.width = cw + 'px'; el.style.height = ch + 'px';
      el.style.background = 'hsl(' + hue(top.data.n) + ',55%,' + (d.depth === 1 ? 72 : 82) + '%)';
      el.setAttribute('data-path', fullPath(names));
      el.setAttribute('data-bytes', String(d.value));
      el.setAttribute('data-depth', String(d.depth));
      el.title = fullPath(names) + '\n' + fmt(d.value);
      if (cw > 30 && ch > 14) {
        var lbl = document.createElement('span');
        lbl.className = 'lbl';
        // package views list files by full path: the box shows the file name, the tooltip the path
        var name = state.kind === 'pkg' && d.data.n.charAt(0) === '/' ? d.data.n.slice(d.data.n.lastIndexOf('/') + 1) : d.data.n;
        lbl.textContent = name + ' ' + fmt(d.value);
        el.appendChild(lbl);
      }
      if (d.children) {
        el.addEventListener('click', function (ev) {
          ev.stopPropagation();
          state.path = names;
          render();
        });
      }
      frag.appendChild(el);
    });
    map.appendChild(frag);
    renderCrumbs(root.value);
  }

  function renderCrumbs(total) {
    crumbs.textContent = '';
    var parts = [state.kind === 'pkg' ? 'all packages' : '/'].concat(state.path);
    parts.forEach(function (p, i) {
      if (i > 0) crumbs.appendChild(document.createTextNode(state.kind === 'pkg' || i === 1 ? ' › ' : '/'));
      var a = document.createElement(i === parts.length - 1 ? 'span' : 'a');
      a.textContent = p;
      if (i < parts.length - 1) a.addEventListener('click', function () { state.path = state.path.slice(0, i); render(); });
      crumbs.appendChild(a);
    });
    var t = document.createElement('span');
    t.className = 'total';
    t.textContent = fmt(total);
    crumbs.appendChild(t);
  }

  var buttons = document.querySelectorAll('.tabs button');
  Array.prototype.forEach.call(buttons, function (b) {
    b.addEventListener('click', function () {
      state = { kind: b.getAttribute('data-kind'), path: [] };
      Array.prototype.forEach.call(buttons, function (o) { o.classList.toggle('active', o === b); });
      render();
    });
  });
  window.addEventListener('resize', render);
  render();
})();
