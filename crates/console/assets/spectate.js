// The spectator page: connects the viewer API (everarcade.js) and hands it
// to the package's viewer (viewer/viewer.js, served from the package and
// covered by its root), or to the generic view when the package ships none
// or its viewer fails. A failing viewer is reported here; the node is not
// affected by anything a viewer does.

import { connect } from './everarcade.js';
import * as generic from './generic.js';

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? '';

function say(message, className = 'panel wide') {
  const element = $('viewer-state');
  element.textContent = message;
  element.className = className;
}

function away(ms) {
  if (ms < 10000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

function watchConnection(api) {
  const connection = $('connection');
  api.onStream((state) => {
    if (state.state === 'live') { connection.textContent = 'live'; connection.className = 'connection good'; }
    else if (state.state === 'back') { connection.textContent = `live again after ${away(state.awayMs)} away`; connection.className = 'connection warn'; }
    else if (state.state === 'away') {
      connection.textContent = `away (${state.error?.code ?? 'error'}: ${state.error?.message ?? ''}); reconnecting…`;
      connection.className = 'connection bad';
      showIncident(api);
    } else if (state.state === 'gap') connection.textContent += ` · ticks ${state.from} to ${state.to} missed`;
    else if (state.state === 'lagged') connection.textContent = `fell behind: ${state.skipped} ticks skipped`;
  });
}

async function showIncident(api) {
  try {
    const status = await api.status();
    const banner = $('incident');
    banner.hidden = !status.incident;
    if (status.incident) banner.textContent = `This world is under an incident (${status.incident.kind} at tick ${status.incident.tick}): its state is not published until it is resolved.`;
  } catch { /* the connection line says it */ }
}

async function startGeneric(api, why) {
  say(why);
  await generic.start(api, $('view'));
}

async function main() {
  let api;
  for (;;) {
    try { api = await connect({ onListenerError: (error) => say(`The viewer failed on a tick: ${error.message}`, "panel wide bad") }); break; } catch (error) {
      say(`The node does not answer (${error.message}); retrying…`, 'panel wide bad');
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
  $('world').textContent = api.world;
  document.title = `${api.world} · EverArcade spectate`;
  watchConnection(api);
  showIncident(api);
  const state = meta('everarcade-viewer');
  if (state === 'none') return startGeneric(api, 'This world ships no viewer: the generic view shows its ticks and the keys you watch.');
  if (state === 'broken') return startGeneric(api, `This world's viewer is not served (${meta('everarcade-viewer-problem')}); showing the generic view.`);
  try {
    const viewer = await import('/spectate/viewer/viewer.js');
    if (typeof viewer.start !== 'function') throw new Error('viewer/viewer.js exports no start(api, root)');
    say('Viewer loaded; every frame is drawn from state whose proof was checked against the published state root.', 'panel wide muted');
    await viewer.start(api, $('view'));
  } catch (error) {
    $('view').replaceChildren();
    await startGeneric(api, `This world's viewer failed (${error.message}); showing the generic view.`);
  }
}

main();
