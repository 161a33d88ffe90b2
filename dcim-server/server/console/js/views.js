// The console's views. Each view: { title (a catalogue key), render(main, args, ctx) -> cleanup?,
// key?(event) }.

import { overview } from './view-overview.js';
import { subsystemView } from './view-subsystem.js';
import { racks } from './view-racks.js';
import { alarms } from './view-alarms.js';
import { events } from './view-events.js';
import { incidents } from './view-incidents.js';
import { maintenance } from './view-maintenance.js';
import { trends } from './view-trends.js';
import { energy } from './view-energy.js';
import { whatif } from './view-whatif.js';
import { fire } from './view-fire.js';
import { wall } from './view-wall.js';

export const VIEWS = {
  overview,
  power: subsystemView('power', 'view.power'),
  cooling: subsystemView('cooling', 'view.cooling'),
  network: subsystemView('network', 'view.network'),
  racks,
  alarms,
  events,
  incidents,
  maintenance,
  trends,
  energy,
  whatif,
  fire,
  wall,
};
