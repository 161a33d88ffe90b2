// The console's views. Each view: { title, render(main, args, ctx) -> cleanup?, key?(event) }.

import { overview } from './view-overview.js';
import { subsystemView } from './view-subsystem.js';
import { racks } from './view-racks.js';
import { alarms } from './view-alarms.js';
import { incidents } from './view-incidents.js';
import { whatif } from './view-whatif.js';
import { fire } from './view-fire.js';

export const VIEWS = {
  overview,
  power: subsystemView('power', 'Power chain'),
  cooling: subsystemView('cooling', 'Cooling'),
  network: subsystemView('network', 'Network'),
  racks,
  alarms,
  incidents,
  whatif,
  fire,
};
