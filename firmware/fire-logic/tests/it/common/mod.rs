//! Test rig: drives the logic at the default 500 ms sensor period.
#![allow(dead_code)]

use fire_logic::{
    Action, Analog, Config, Digital, Inputs, NetworkCommand, Outputs, RackLogic, Refused,
};

pub const PERIOD: u64 = 500;

pub fn c(deg: f64) -> i32 {
    (deg * 10.0).round() as i32
}

pub struct Rig {
    pub logic: RackLogic,
    pub t: u64,
    pub inp: Inputs,
    /// Per-source "keep sending" values (None = send nothing).
    pub temps: [Option<Analog>; 4],
    pub smoke: Option<Digital>,
    pub offgas: Option<Analog>,
    pub out: Outputs,
    pub healthy_contactor: bool,
}

impl Rig {
    pub fn new() -> Rig {
        Rig::with(Config::default())
    }

    pub fn with(cfg: Config) -> Rig {
        let logic = RackLogic::new(cfg).expect("valid config");
        let mut r = Rig {
            logic,
            t: 0,
            inp: Inputs::default(),
            temps: [Some(Analog::Value(c(25.0))); 4],
            smoke: Some(Digital::Off),
            offgas: if cfg.fitted.offgas {
                Some(Analog::Value(0))
            } else {
                None
            },
            out: Outputs::default(),
            healthy_contactor: true,
        };
        r.inp.manual_only = Digital::Off;
        r.inp.authority = Digital::Off;
        r.inp.hold = Digital::Off;
        r.inp.reset = Digital::Off;
        r.inp.manual_release = Digital::Off;
        r.inp.room_gas_release = Digital::Off;
        r.inp.feedback[0] = Digital::Off;
        r.out = r.logic.step(0, &r.sample());
        r
    }

    pub fn all(&mut self, deg: f64) {
        self.temps = [Some(Analog::Value(c(deg))); 4];
    }

    pub fn set(&mut self, i: usize, deg: f64) {
        self.temps[i] = Some(Analog::Value(c(deg)));
    }

    /// The inputs of the next cycle (as `tick` would give them).
    pub fn sample(&self) -> Inputs {
        let mut i = self.inp;
        i.bms_max = self.temps[0].unwrap_or_default();
        i.rack_temp1 = self.temps[1].unwrap_or_default();
        i.rack_temp2 = self.temps[2].unwrap_or_default();
        i.camera_max = self.temps[3].unwrap_or_default();
        i.smoke = self.smoke.unwrap_or_default();
        i.offgas = self.offgas.unwrap_or_default();
        i
    }

    /// Moves each temperature toward its target by at most 10 C per cycle (a plausible rate),
    /// ticking until all are there.
    pub fn ramp_to(&mut self, target: [f64; 4]) -> Outputs {
        loop {
            let mut done = true;
            for (i, want) in target.iter().enumerate() {
                let want = c(*want);
                let cur = match self.temps[i] {
                    Some(Analog::Value(v)) => v,
                    _ => want,
                };
                let next = if want > cur {
                    (cur + 100).min(want)
                } else {
                    (cur - 100).max(want)
                };
                if next != want {
                    done = false;
                }
                self.temps[i] = Some(Analog::Value(next));
            }
            self.tick();
            if done {
                return self.out;
            }
        }
    }

    /// One 500 ms cycle.
    pub fn tick(&mut self) -> Outputs {
        self.t += PERIOD;
        if self.healthy_contactor {
            // A healthy contactor follows the command before the next cycle.
            self.inp.feedback[0] = if self.out.actions.contains(Action::ContactorOpen) {
                Digital::On
            } else {
                Digital::Off
            };
        }
        let inp = self.sample();
        self.out = self.logic.step(self.t, &inp);
        // Edge-triggered switches are pressed for one cycle only unless the test keeps them.
        self.out
    }

    pub fn run(&mut self, ms: u64) -> Outputs {
        let end = self.t + ms;
        while self.t < end {
            self.tick();
        }
        self.out
    }

    /// A controller restart now: only the latch record survives (through its bytes); the
    /// sensors keep their values, the clock keeps going.
    pub fn restart(&mut self) {
        let bytes = self.logic.latch_record().to_bytes();
        let rec = fire_logic::LatchRecord::from_bytes(&bytes).expect("record decodes");
        let cfg = *self.logic.config();
        self.logic = RackLogic::restore(cfg, &rec, self.t).expect("valid config");
    }

    /// Ticks until `cond` holds (panics after `max_ms`).
    pub fn run_until(&mut self, max_ms: u64, cond: impl Fn(&Outputs) -> bool) -> Outputs {
        let end = self.t + max_ms;
        while !cond(&self.out) {
            assert!(self.t < end, "condition not reached within {max_ms} ms");
            self.tick();
        }
        self.out
    }

    /// Presses a momentary switch for one cycle.
    pub fn press(&mut self, which: fn(&mut Inputs) -> &mut Digital) -> Outputs {
        *which(&mut self.inp) = Digital::On;
        let o = self.tick();
        *which(&mut self.inp) = Digital::Off;
        self.tick();
        o
    }

    pub fn cmd(&mut self, c: NetworkCommand) -> Result<(), Refused> {
        self.logic.command(self.t, c)
    }

    /// Drains the event log into display strings.
    pub fn events(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(e) = self.logic.take_event() {
            v.push(format!("{} {}", e.t_ms, e.kind));
        }
        v
    }
}

pub fn reset(i: &mut Inputs) -> &mut Digital {
    &mut i.reset
}
pub fn manual(i: &mut Inputs) -> &mut Digital {
    &mut i.manual_release
}
pub fn room_gas(i: &mut Inputs) -> &mut Digital {
    &mut i.room_gas_release
}
