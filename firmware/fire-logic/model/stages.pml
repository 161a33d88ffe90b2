/*
 * The rack fire stage machine (firmware/fire-logic/src/logic.rs) as a Promela model for Spin.
 * Checked by tests/model/run.sh (CI): every `ltl` claim below, safety and liveness.
 *
 * One loop iteration is one second of controller time (TICK_MS). The thresholds and delays
 * are the defaults of `fire_logic::Config::default()`; firmware/fire-logic/tests/model.rs
 * reads every `#define` marked "Config" or "const" below and fails if it differs from the
 * Rust value, so the model and the code cannot drift apart.
 *
 * What the model abstracts (each checked on the Rust code by tests/hazards.rs and the
 * property tests instead): sensor supervision, confirmation and rate limiting are folded into
 * "the highest valid confirmed temperature" `gov` (NONE when no temperature source is valid)
 * and "an independent source corroborates it" `indep`; the per-source peaks into `fallen`
 * (the valid sources fell `*_min_fall` below their own peaks) and `lost_hot` (a source was
 * lost while at or above stage 1); smoke and off-gas into three levels; the off-gas timer only
 * runs below stage 1, where it matters. Each second the environment chooses every input that
 * can matter in the current stage. It may also commit, once and for good, to a mode that a
 * liveness claim assumes: CALM (nobody touches the hold, manual-only, release or reset inputs
 * any more; the controller may still restart, any number of times, even back to back),
 * BURNT (CALM, and every sensor is destroyed), FIRE3 (CALM, and stage 3 evidence with
 * independent corroboration), and the SPARSE variants (restarts still, but never two in a
 * row: the controller runs at least one second between them).
 */

/* Config (tenths of a degree C / of a percent LFL; milliseconds) */
#define PREALARM 500
#define STAGE1 600
#define STAGE2 680
#define STAGE3 800
#define RESET_MAX 450
#define OFFGAS_SUPERVISORY 100
#define OFFGAS_STAGE1 250
#define COOLANT_AFTER_MS 120000
#define GAS_AFTER_MS 300000
#define GAS_WARNING_MS 30000
#define OFFGAS_SUSTAINED_MS 60000
/* const (fire_logic::RESTORE_CREDIT_MS) */
#define RESTORE_CREDIT_MS 1000

/* The model's time step. */
#define TICK_MS 1000
#define COOLANT_T (COOLANT_AFTER_MS / TICK_MS)
#define GAS_T (GAS_AFTER_MS / TICK_MS)
#define WARN_T (GAS_WARNING_MS / TICK_MS)
#define OFFGAS_T (OFFGAS_SUSTAINED_MS / TICK_MS)
#define CREDIT_T (RESTORE_CREDIT_MS / TICK_MS)

#define NONE (-1)
#define AMBIENT 250

/* Stage codes, as fire.stage and fire_logic::Stage::code. */
#define NORMAL 0
#define PRE_ALARM 1
#define ST1 2
#define ST2 3
#define ST3 4
#define ST4 5
#define ST5 6

/* Room gas states, as fire_logic::GasState. */
#define IDLE 0
#define WARNING 1
#define HELD 2
#define WAIT_MANUAL 3
#define RELEASED 4

/* Operator events of one second. */
#define EV_NONE 0
#define EV_MANUAL 1
#define EV_ROOM_GAS 2
#define EV_RESET 3
#define EV_RESTART 4

#define MIN(a, b) ((a) < (b) -> (a) : (b))

byte stage = NORMAL;
bool agent;
byte gas = IDLE;
bool gas_manual;
bool lost_hot;
short timer;     /* seconds in stage 3 or 4, saturated at GAS_T */
byte warn;       /* seconds the pre-discharge warning has sounded */
byte og;         /* 0: off-gas timer not running; k+1: running for k seconds (saturated) */

/* The environment's sticky mode (see the header). */
#define FREE 0
#define CALM 1
#define BURNT 2
#define FIRE3 3
#define SPARSE 4
#define BURNT_SPARSE 5
byte mode = FREE;
#define calm (mode != FREE)
#define burnt (mode == BURNT || mode == BURNT_SPARSE)
#define sparse (mode == SPARSE || mode == BURNT_SPARSE)
bool restarted;   /* the last step was a restart */

/* Ghosts for the claims. */
bool evidence3;        /* stage-3 evidence (or stage 2 then every temperature lost) since reset */
bool manual_seen;      /* a rack or room release since reset */
bool room_gas_seen;    /* the room gas release since reset */
bool gas_ok = true;    /* every release followed WARN_T seconds of sounding warning */
bool forward_ok = true;/* the stage never fell without a reset the inputs allow */
bool occupied_ok = true; /* manual-only: no agent or gas a person did not ask for */
byte sounding;         /* seconds the warning sounded since the countdown last (re)started */

active proctype rack()
{
    /* The inputs of one second and the step's temporaries: cleared at the end of every
       step, so that they are never part of a stored state. */
    short gov, offgas;
    bool indep, fallen, smoke, hold, mo;
    byte ev, before;
    bool reset_ok, ev3, ev2, c1, cpre, notfallen, c3, c4, c5, was_agent, was_released;
    bool raw3;     /* ghost: stage-3 evidence in the raw inputs of this second */
    byte was_gas;
    do
    :: atomic {
        /* ---- the environment ---- */
        if
        :: mode == FREE ->
            if
            :: skip
            :: mode = CALM
            :: mode = BURNT
            :: mode = FIRE3
            :: mode = SPARSE
            :: mode = BURNT_SPARSE
            fi
        :: else -> skip
        fi;
        gov = AMBIENT; indep = false; fallen = true; smoke = false; offgas = 0;
        if
        :: burnt -> gov = NONE
        :: mode == FIRE3 -> gov = STAGE3; indep = true
        :: mode == FREE || mode == CALM || mode == SPARSE ->
            if
            :: stage <= ST2 ->
                if
                :: gov = NONE
                :: gov = AMBIENT
                :: gov = PREALARM
                :: gov = STAGE1
                :: gov = STAGE2
                :: gov = STAGE2; indep = true
                :: gov = STAGE3
                :: gov = STAGE3; indep = true
                fi;
                if
                :: stage < ST1 ->
                    if
                    :: skip
                    :: smoke = true
                    :: offgas = OFFGAS_SUPERVISORY
                    :: offgas = OFFGAS_STAGE1
                    :: smoke = true; offgas = OFFGAS_SUPERVISORY
                    fi
                :: else -> skip
                fi
            :: stage == ST3 || stage == ST4 ->
                if
                :: gov = NONE
                :: gov = AMBIENT
                :: gov = STAGE1
                :: gov = STAGE1; fallen = false
                fi
            :: else -> skip
            fi
        fi;
        if
        :: mode == FREE && stage >= ST2 && stage <= ST4 -> if :: lost_hot = true :: skip fi
        :: else -> skip
        fi;
        hold = false; mo = false; ev = EV_NONE;
        if
        :: mode == FREE ->
            if :: stage == ST5 -> if :: hold = true :: skip fi :: else -> skip fi;
            if :: mo = true :: skip fi;
            if
            :: skip
            :: ev = EV_MANUAL
            :: ev = EV_ROOM_GAS
            :: stage != NORMAL -> ev = EV_RESET
            :: ev = EV_RESTART
            fi
        :: mode == CALM || mode == BURNT || mode == FIRE3 -> if :: skip :: ev = EV_RESTART fi
        :: sparse && !restarted -> if :: skip :: ev = EV_RESTART fi
        :: else -> skip
        fi;
        restarted = (ev == EV_RESTART);

        /* ---- ghosts, from the inputs and the state before the step only ---- */
        raw3 = ((gov >= STAGE3 && indep) || (stage == ST2 && gov == NONE && lost_hot));
        was_gas = gas;
        if :: ev != EV_RESTART && gas == WARNING -> sounding = MIN(sounding + 1, WARN_T) :: else -> skip fi;

        /* ---- the logic: one step (after a restore when ev == EV_RESTART) ---- */
        before = stage;
        was_agent = agent;
        was_released = (gas == RELEASED);
        if
        :: ev == EV_RESTART ->
            /* Restore: running timers get the credit; no time passes in this step. */
            if :: stage == ST3 || stage == ST4 -> timer = MIN(timer + CREDIT_T, GAS_T) :: else -> skip fi;
            if :: og > 0 -> og = MIN(og + CREDIT_T, OFFGAS_T + 1) :: else -> skip fi
        :: else ->
            if :: stage == ST3 || stage == ST4 -> timer = MIN(timer + 1, GAS_T) :: else -> skip fi;
            if
            :: stage < ST1 && offgas >= OFFGAS_SUPERVISORY -> og = (og == 0 -> 1 : MIN(og + 1, OFFGAS_T + 1))
            :: else -> og = 0
            fi
        fi;
        /* Local reset: every source valid and cool, no smoke, no off-gas. */
        reset_ok = false;
        if
        :: ev == EV_RESET && (stage != NORMAL || agent || gas != IDLE) ->
            if
            :: gov != NONE && gov < RESET_MAX && !smoke && offgas == 0 ->
                reset_ok = true;
                stage = NORMAL; agent = false; gas = IDLE; gas_manual = false;
                lost_hot = false; timer = 0; warn = 0; og = 0;
                evidence3 = false; manual_seen = false; room_gas_seen = false
            :: else -> skip
            fi
        :: else -> skip
        fi;
        /* Stages, forward only: the highest condition that holds. */
        ev3 = (gov >= STAGE3 && indep);
        ev2 = (gov >= STAGE2 && indep);
        c3 = (ev3 || (stage == ST2 && gov == NONE && lost_hot));
        notfallen = (gov == NONE || lost_hot || (gov >= STAGE1 && !fallen));
        c5 = (stage == ST4 && timer >= GAS_T && notfallen);
        c4 = (stage == ST3 && timer >= COOLANT_T && notfallen);
        c1 = (gov >= STAGE1 || offgas >= OFFGAS_STAGE1 || og > OFFGAS_T
              || (smoke && offgas >= OFFGAS_SUPERVISORY) || (smoke && gov == NONE));
        cpre = (gov >= PREALARM || offgas >= OFFGAS_SUPERVISORY || smoke);
        if
        :: c5 && stage < ST5 -> stage = ST5; timer = 0; lost_hot = false
        :: !c5 && c4 && stage < ST4 -> stage = ST4; timer = 0; lost_hot = false
        :: !c5 && !c4 && c3 && stage < ST3 -> stage = ST3; timer = 0; lost_hot = false
        :: !c5 && !c4 && !c3 && ev2 && stage < ST2 -> stage = ST2; lost_hot = false
        :: !c5 && !c4 && !c3 && !ev2 && c1 && stage < ST1 -> stage = ST1
        :: !c5 && !c4 && !c3 && !ev2 && !c1 && cpre && stage < PRE_ALARM -> stage = PRE_ALARM
        :: else -> skip
        fi;
        /* The rack's manual release: stage 3 and agent, never the room gas. */
        if
        :: ev == EV_MANUAL ->
            if :: stage < ST3 -> stage = ST3; timer = 0; lost_hot = false :: else -> skip fi;
            agent = true
        :: else -> skip
        fi;
        /* The room's gas release: stage 5; a person decided. */
        if
        :: ev == EV_ROOM_GAS ->
            if :: stage < ST5 -> stage = ST5; timer = 0; lost_hot = false :: else -> skip fi;
            gas_manual = true
        :: else -> skip
        fi;
        /* Automatic agent unless manual-only. */
        if :: stage >= ST3 && !agent && !mo -> agent = true :: else -> skip fi;
        /* Room gas: warning, hold, manual-only, release. */
        if
        :: stage == ST5 ->
            if
            :: gas == RELEASED -> skip
            :: gas != RELEASED && mo && !gas_manual -> gas = WAIT_MANUAL; warn = 0
            :: gas != RELEASED && !(mo && !gas_manual) && hold -> gas = HELD; warn = 0
            :: gas != RELEASED && !(mo && !gas_manual) && !hold && gas != WARNING ->
                gas = WARNING; warn = 0
            :: gas == WARNING && !(mo && !gas_manual) && !hold ->
                if :: ev != EV_RESTART -> warn = MIN(warn + 1, WARN_T) :: else -> skip fi;
                if
                :: warn >= WARN_T -> gas = RELEASED
                :: else -> skip
                fi
            fi
        :: else -> skip
        fi;
        /* ---- ghost checks of the step ---- */
        evidence3 = (evidence3 || raw3);
        manual_seen = (manual_seen || ev == EV_MANUAL || ev == EV_ROOM_GAS);
        room_gas_seen = (room_gas_seen || ev == EV_ROOM_GAS);
        /* Someone holds the abort switch, or the room is occupied and nobody asked for the
           gas: the countdown starts again from zero. */
        if :: hold || (mo && !room_gas_seen) -> sounding = 0 :: else -> skip fi;
        if
        :: gas == RELEASED && was_gas != RELEASED -> gas_ok = (gas_ok && sounding >= WARN_T)
        :: else -> skip
        fi;
        if :: gas != WARNING || was_gas != WARNING -> sounding = 0 :: else -> skip fi;
        /* The stage falls only on a reset the raw inputs allow (every source valid and
           cool, no smoke, no off-gas). */
        forward_ok = (forward_ok && (stage >= before
            || (ev == EV_RESET && gov != NONE && gov < RESET_MAX && !smoke && offgas == 0)));
        occupied_ok = (occupied_ok
            && !(mo && agent && !was_agent && ev != EV_MANUAL)
            && !(mo && gas == RELEASED && !was_released && !gas_manual));
        if :: stage >= ST1 -> og = 0 :: else -> skip fi;
        gov = 0; offgas = 0; indep = false; fallen = false; smoke = false; hold = false;
        mo = false; ev = 0; before = 0; reset_ok = false; ev3 = false; ev2 = false;
        raw3 = false; was_gas = 0;
        c1 = false; cpre = false; notfallen = false; c3 = false; c4 = false; c5 = false;
        was_agent = false; was_released = false
       }
    od
}

/* ---- safety ---- */
ltl forward_only { [] forward_ok }
ltl warning_precedes_every_gas_release { [] gas_ok }
ltl no_release_without_evidence { [] ((agent || stage >= ST4 || gas == RELEASED) -> (evidence3 || manual_seen)) }
ltl manual_only_never_releases_by_itself { [] occupied_ok }
ltl gas_only_in_stage5 { [] ((gas != IDLE) -> (stage == ST5)) }

/* ---- liveness ---- */
ltl evidence_leads_to_agent { [] ((mode == FIRE3) -> <> (stage >= ST3 && agent)) }
ltl burnt_after_agent_gets_coolant { [] ((stage == ST3 && burnt) -> <> (stage == ST4)) }
ltl burnt_coolant_gets_gas_request { [] ((stage == ST4 && burnt) -> <> (stage == ST5)) }
ltl gas_request_leads_to_release { [] ((stage == ST5 && sparse) -> <> (gas == RELEASED)) }
