// A small SVG line chart: the last N samples, scaled to the larger of their
// maximum and an optional target (drawn dashed).

const SVG = 'http://www.w3.org/2000/svg';

export class LineChart {
  constructor(svg, { samples = 60, target = null } = {}) {
    this.svg = svg;
    this.samples = samples;
    this.target = target;
    this.values = [];
    svg.setAttribute('viewBox', `0 0 ${samples - 1} 100`);
    svg.setAttribute('preserveAspectRatio', 'none');
    this.line = document.createElementNS(SVG, 'polyline');
    this.targetLine = document.createElementNS(SVG, 'line');
    this.targetLine.setAttribute('class', 'target');
    svg.append(this.targetLine, this.line);
  }

  push(value) {
    this.values.push(value);
    if (this.values.length > this.samples) this.values.shift();
    this.draw();
  }

  draw() {
    const top = Math.max(1, this.target || 0, ...this.values) * 1.1;
    const offset = this.samples - this.values.length;
    const points = this.values.map((v, i) => `${offset + i},${(100 - (v / top) * 100).toFixed(2)}`);
    this.line.setAttribute('points', points.join(' '));
    if (this.target) {
      const y = (100 - (this.target / top) * 100).toFixed(2);
      for (const [k, v] of [['x1', 0], ['x2', this.samples - 1], ['y1', y], ['y2', y]]) this.targetLine.setAttribute(k, v);
    }
  }
}
