// The 2d-arena's viewer for the spectator page (docs/GAME_DEVELOPERS.md,
// "A viewer for the spectator page"). It reads the keys `P` (players) and
// `B` (projectiles) through the page's API, which checks each value's proof
// against the state root the node published for that tick, and draws only
// what verified: projectiles where the last verified frame has them, and
// players moving smoothly between their positions in the last two verified
// frames (so the picture runs at most one read behind). It reads at most
// READS_PER_SECOND frames a second, one at a time, whatever the tick rate:
// a read is a request the node answers on its world thread, and 200
// spectators at 2 reads a second cost the node little (docs/BENCHMARKS.md).
const READS_PER_SECOND = 2;
const READ_PERIOD_MS = 1000 / READS_PER_SECOND;
/** A player who moved farther than this between two frames (a respawn) jumps. */
const JUMP_UNITS = 200;
const ARENA = 1000;
const PADDING = 14; // canvas pixels around the arena, so a player at a wall shows whole
const PLAYER_BYTES = 18;
const PROJECTILE_BYTES = 8;
const KEY_PLAYERS = '50'; // "P"
const KEY_PROJECTILES = '42'; // "B"

function players(value) {
  const out = [];
  if (!value) return out;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  for (let slot = 0; (slot + 1) * PLAYER_BYTES <= value.length; slot++) {
    const at = slot * PLAYER_BYTES;
    const flags = view.getUint8(at + 7);
    if (!(flags & 1)) continue;
    out.push({
      slot,
      x: view.getUint16(at, true),
      y: view.getUint16(at + 2, true),
      hp: view.getUint8(at + 6),
      alive: (flags & 2) !== 0,
      score: view.getUint32(at + 10, true),
      deaths: view.getUint32(at + 14, true),
    });
  }
  return out;
}

function projectiles(value) {
  const out = [];
  if (!value) return out;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  for (let at = 0; at + PROJECTILE_BYTES <= value.length; at += PROJECTILE_BYTES) {
    out.push({ x: view.getUint16(at, true) / 8, y: view.getUint16(at + 2, true) / 8, owner: view.getUint8(at + 6) });
  }
  return out;
}

const hue = (slot) => (slot * 137) % 360;

// Where to draw each player `t` (0..1) of the way from the previous
// verified frame to the current one.
function between(previous, current, t) {
  const before = new Map((previous ? previous.players : []).map((player) => [player.slot, player]));
  return current.players.map((player) => {
    const old = before.get(player.slot);
    if (!old || !old.alive || !player.alive
      || Math.abs(old.x - player.x) > JUMP_UNITS || Math.abs(old.y - player.y) > JUMP_UNITS) return player;
    return { ...player, x: old.x + (player.x - old.x) * t, y: old.y + (player.y - old.y) * t };
  });
}

function draw(canvas, frame, players) {
  const context = canvas.getContext('2d');
  const scale = (canvas.width - 2 * PADDING) / ARENA;
  const styles = getComputedStyle(canvas);
  context.setTransform(1, 0, 0, 1, 0, 0);
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.translate(PADDING, PADDING);
  context.strokeStyle = styles.color;
  context.lineWidth = 2;
  context.strokeRect(0, 0, ARENA * scale, ARENA * scale);
  for (const shot of frame.projectiles) {
    context.fillStyle = `hsl(${hue(shot.owner)} 80% 45%)`;
    context.fillRect(shot.x * scale - 3, shot.y * scale - 3, 6, 6);
  }
  for (const player of players) {
    const [x, y] = [player.x * scale, player.y * scale];
    context.globalAlpha = player.alive ? 1 : 0.3;
    context.fillStyle = `hsl(${hue(player.slot)} 70% 50%)`;
    context.beginPath();
    context.arc(x, y, 12 * scale + 4, 0, 2 * Math.PI);
    context.fill();
    context.fillStyle = styles.color;
    context.font = `${Math.max(10, 24 * scale)}px system-ui, sans-serif`;
    context.fillText(String(player.slot), x + 10, y - 8);
    context.globalAlpha = 1;
  }
}

function scoreboard(body, frame) {
  body.replaceChildren();
  const ranked = [...frame.players].sort((a, b) => b.score - a.score || a.slot - b.slot);
  for (const player of ranked) {
    const row = body.insertRow();
    row.dataset.slot = player.slot;
    for (const [value, numeric] of [[`player ${player.slot}`, false], [player.x, true], [player.y, true],
      [player.alive ? player.hp : 'dead', true], [player.score, true], [player.deaths, true]]) {
      const cell = row.insertCell();
      cell.textContent = String(value);
      if (numeric) cell.className = 'num';
    }
  }
}

/** Called by the spectator page with the viewer API and an element to fill. */
export async function start(api, root) {
  const stageSection = document.createElement('section');
  stageSection.className = 'panel';
  stageSection.setAttribute('aria-labelledby', 'arena-title');
  const title = document.createElement('h2');
  title.id = 'arena-title';
  title.textContent = '2d-arena';
  const stage = document.createElement('div');
  stage.className = 'stage';
  const canvas = document.createElement('canvas');
  canvas.width = 800;
  canvas.height = 800;
  canvas.id = 'arena';
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', 'The arena: players as circles, projectiles as dots; the table lists the same players.');
  stage.append(canvas);
  const proof = document.createElement('p');
  proof.id = 'arena-proof';
  proof.className = 'muted';
  proof.setAttribute('role', 'status');
  proof.textContent = 'Waiting for the first verified frame…';
  stageSection.append(title, stage, proof);

  const scoresSection = document.createElement('section');
  scoresSection.className = 'panel';
  scoresSection.setAttribute('aria-labelledby', 'scores-title');
  const scoresTitle = document.createElement('h2');
  scoresTitle.id = 'scores-title';
  scoresTitle.textContent = 'Players and scores';
  const table = document.createElement('table');
  table.innerHTML = '<thead><tr><th scope="col">player</th><th scope="col" class="num">x</th><th scope="col" class="num">y</th><th scope="col" class="num">hp</th><th scope="col" class="num">score</th><th scope="col" class="num">deaths</th></tr></thead>';
  const body = table.createTBody();
  body.id = 'scores';
  scoresSection.append(scoresTitle, table);
  root.replaceChildren(stageSection, scoresSection);

  let busy = false;
  let last = 0;
  let previous = null;
  let current = null;
  let arrived = 0;
  function animate() {
    if (current) {
      const t = Math.min(1, (performance.now() - arrived) / READ_PERIOD_MS);
      draw(canvas, current, between(previous, current, t));
    }
    requestAnimationFrame(animate);
  }
  async function frame() {
    busy = true;
    last = performance.now();
    try {
      const [p, b] = await Promise.all([api.read(KEY_PLAYERS), api.read(KEY_PROJECTILES)]);
      previous = current;
      current = { tick: p.tick, players: players(p.value), projectiles: projectiles(b.value) };
      arrived = performance.now();
      scoreboard(body, current);
      canvas.dataset.tick = String(p.tick);
      proof.className = 'good';
      proof.textContent = `Tick ${p.tick}: ${current.players.length} players, ${current.projectiles.length} projectiles; proofs of P and B verified against state root ${p.stateRoot.slice(0, 16)}….`;
    } catch (error) {
      proof.className = 'bad';
      proof.textContent = `Not drawn: ${error.code || error.name}: ${error.message}`;
    } finally {
      busy = false;
    }
  }
  api.onTick(() => {
    if (!busy && performance.now() - last >= READ_PERIOD_MS) frame();
  });
  requestAnimationFrame(animate);
  await frame();
}
