//! The request planner: merges neighbouring registers of the same table and unit id into as few
//! reads as possible. Pure; no I/O.
//!
//! Invariants (property-tested): every item is covered by exactly one read that contains all of
//! its registers (an item is a whole point, or a chunk of a text point longer than the limit,
//! see [`class_items`]); no read is longer than the limit of its table (125 registers / 2000 bits, or
//! the profile's lower `max_registers_per_read`); two items are only merged across a hole of at
//! most `max_gap` unused registers.

use dcim_profiles::{PollClass, Profile, Table, WireType};
use std::collections::BTreeMap;

/// One thing to read: `count` registers (or bits) of `table` from `address`, for `point`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub point: usize,
    pub unit: u8,
    pub table: Table,
    pub address: u16,
    pub count: u16,
}

/// One read request and the points it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub unit: u8,
    pub table: Table,
    pub address: u16,
    pub count: u16,
    /// Indices of the points (into the profile's `points`) decoded from this read.
    pub points: Vec<usize>,
}

impl Read {
    /// The exclusive end address.
    pub fn end(&self) -> u32 {
        self.address as u32 + self.count as u32
    }
}

/// Planner limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest hole of unused registers (or bits) read through to merge two items.
    pub max_gap: u16,
    /// At most this many registers per read (capped at 125).
    pub max_registers: u16,
    /// At most this many bits per coil/discrete read (capped at 2000).
    pub max_bits: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_gap: 8,
            max_registers: 125,
            max_bits: 2000,
        }
    }
}

impl Limits {
    fn max_for(&self, table: Table) -> u32 {
        if table.is_bits() {
            self.max_bits.clamp(1, 2000) as u32
        } else {
            self.max_registers.clamp(1, 125) as u32
        }
    }
}

/// Plans the reads for `items`. Reads come out ordered by unit, table and address. An item longer
/// than the limit (which the profile loader never lets through) gets a read of its own.
pub fn plan(items: &[Item], limits: Limits) -> Vec<Read> {
    let mut groups: BTreeMap<(u8, Table), Vec<&Item>> = BTreeMap::new();
    for it in items {
        groups.entry((it.unit, it.table)).or_default().push(it);
    }
    let mut reads = Vec::new();
    for ((unit, table), mut its) in groups {
        its.sort_by_key(|i| (i.address, std::cmp::Reverse(i.count)));
        let max = limits.max_for(table);
        let gap = limits.max_gap as u32;
        let mut cur: Option<(u32, u32, Vec<usize>)> = None; // start, end, points
        for it in its {
            let (a, e) = (
                it.address as u32,
                it.address as u32 + it.count.max(1) as u32,
            );
            match &mut cur {
                Some((start, end, points)) if a <= *end + gap && e.max(*end) - *start <= max => {
                    *end = e.max(*end);
                    points.push(it.point);
                }
                _ => {
                    reads.extend(cur.take().map(|run| Read::of_run(unit, table, run)));
                    cur = Some((a, e, vec![it.point]));
                }
            }
        }
        reads.extend(cur.map(|run| Read::of_run(unit, table, run)));
    }
    reads
}

impl Read {
    /// The read of a run of registers or bits: (start, end, points).
    fn of_run(unit: u8, table: Table, (start, end, points): (u32, u32, Vec<usize>)) -> Read {
        Read {
            unit,
            table,
            address: start as u16,
            count: (end - start) as u16,
            points,
        }
    }
}

/// Splits a read the device refused (a Modbus exception) in two: its points in address order,
/// halved, each half planned again with the same limits, so the halves cover exactly the
/// read's points and never more registers than it did. Repeated, this isolates the registers
/// a device refuses in `log2(points)` steps. `None` for a read of a single point (that point
/// is the refused one). `items` must hold the items of the read's points.
pub fn bisect(read: &Read, items: &[Item], limits: Limits) -> Option<Vec<Read>> {
    if read.points.len() < 2 {
        return None;
    }
    // The read's items: its points' items within its registers (a long text point has
    // several items, one per read).
    let mut its: Vec<Item> = items
        .iter()
        .filter(|i| {
            read.points.contains(&i.point)
                && i.unit == read.unit
                && i.table == read.table
                && i.address >= read.address
                && u32::from(i.address) + u32::from(i.count) <= read.end()
        })
        .copied()
        .collect();
    if its.len() < 2 {
        return None;
    }
    its.sort_by_key(|i| (i.address, i.point));
    let (a, b) = its.split_at(its.len() / 2);
    let mut out = plan(a, limits);
    out.extend(plan(b, limits));
    Some(out)
}

/// The planner limits of a Modbus profile.
pub fn limits_of(profile: &Profile) -> Limits {
    profile
        .modbus
        .map(|m| Limits {
            max_gap: m.max_gap,
            max_registers: m.max_registers_per_read,
            max_bits: 2000,
        })
        .unwrap_or_default()
}

/// The reads of one poll class of a Modbus profile for a device at `unit`.
pub fn plan_class(profile: &Profile, unit: u8, class: PollClass) -> Vec<Read> {
    plan(&class_items(profile, unit, class), limits_of(profile))
}

/// The items of one poll class: one per Modbus point, except that a text (string) point longer
/// than one read may be is split into consecutive chunks of at most `max_registers_per_read`
/// (its characters do not change meaning when read in parts; a number is always one item).
pub fn class_items(profile: &Profile, unit: u8, class: PollClass) -> Vec<Item> {
    let max = limits_of(profile).max_registers.clamp(1, 125);
    let mut out = Vec::new();
    for (i, p) in profile.points.iter().enumerate() {
        if p.poll != class {
            continue;
        }
        let Some(a) = p.modbus() else { continue };
        let count = a.count();
        let chunk = if matches!(a.wire, WireType::String(_)) && !a.table.is_bits() {
            max
        } else {
            count
        };
        let mut at = 0;
        while at < count {
            let n = chunk.min(count - at);
            out.push(Item {
                point: i,
                unit,
                table: a.table,
                address: a.address + at,
                count: n,
            });
            at += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(point: usize, table: Table, address: u16, count: u16) -> Item {
        Item {
            point,
            unit: 1,
            table,
            address,
            count,
        }
    }

    #[test]
    fn neighbours_merge_and_gaps_split() {
        let items = [
            item(0, Table::Holding, 0, 2),
            item(1, Table::Holding, 2, 2),
            item(2, Table::Holding, 10, 1), // gap of 6 from 4
            item(3, Table::Holding, 30, 4), // gap of 19
            item(4, Table::Input, 0, 1),
            item(5, Table::Coil, 0, 1),
            item(6, Table::Coil, 1500, 1),
        ];
        let reads = plan(&items, Limits::default());
        let shape: Vec<_> = reads
            .iter()
            .map(|r| (r.table, r.address, r.count, r.points.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (Table::Coil, 0, 1, vec![5]),
                (Table::Coil, 1500, 1, vec![6]),
                (Table::Holding, 0, 11, vec![0, 1, 2]),
                (Table::Holding, 30, 4, vec![3]),
                (Table::Input, 0, 1, vec![4]),
            ]
        );
        let wide = plan(
            &items[..4],
            Limits {
                max_gap: 30,
                ..Limits::default()
            },
        );
        assert_eq!(wide.len(), 1);
        assert_eq!((wide[0].address, wide[0].count), (0, 34));
    }

    #[test]
    fn reads_split_at_125_registers() {
        let items: Vec<_> = (0..300)
            .map(|i| item(i, Table::Input, i as u16, 1))
            .collect();
        let reads = plan(&items, Limits::default());
        assert_eq!(
            reads.iter().map(|r| r.count).collect::<Vec<_>>(),
            vec![125, 125, 50]
        );
    }

    #[test]
    fn a_value_never_straddles_two_reads() {
        // A 4-register value starting at 123 cannot share the first read (0..125).
        let items = [
            item(0, Table::Holding, 0, 1),
            item(1, Table::Holding, 123, 4),
        ];
        let reads = plan(&items, Limits::default());
        assert_eq!(reads.len(), 2);
        assert_eq!((reads[1].address, reads[1].count), (123, 4));
    }

    #[test]
    fn units_are_never_merged() {
        let mut b = item(1, Table::Holding, 1, 1);
        b.unit = 2;
        let reads = plan(&[item(0, Table::Holding, 0, 1), b], Limits::default());
        assert_eq!(reads.len(), 2);
    }

    /// Hazard: a device that reads at most 2 registers per request made a profile with a text
    /// point unusable (refused), so its numbers were not read either.
    #[test]
    fn a_long_text_point_is_read_in_chunks_within_the_limit() {
        let p = dcim_profiles::load_str(
            "t.toml",
            r#"
[profile]
name = "t"
protocol = "modbus"
[modbus]
address_base = 0
max_registers_per_read = 2
[[point]]
id = "model"
role = "device.firmware"
table = "holding"
register = 10
type = "string"
length = 9
[[point]]
id = "v"
role = "custom.v"
table = "holding"
register = 15
type = "f32"
"#,
        )
        .unwrap();
        let items = class_items(&p, 1, PollClass::Normal);
        let shape: Vec<_> = items
            .iter()
            .map(|i| (i.point, i.address, i.count))
            .collect();
        assert_eq!(shape, vec![(0, 10, 2), (0, 12, 2), (0, 14, 1), (1, 15, 2)]);
        let reads = plan_class(&p, 1, PollClass::Normal);
        assert!(reads.iter().all(|r| r.count <= 2), "{reads:?}");
        assert_eq!(
            reads.iter().filter(|r| r.points.contains(&0)).count(),
            3,
            "the text point spans three reads"
        );
    }

    #[test]
    fn bisect_halves_the_points_and_stops_at_one() {
        let items: Vec<_> = (0..5)
            .map(|i| item(i, Table::Holding, i as u16 * 2, 2))
            .collect();
        let reads = plan(&items, Limits::default());
        assert_eq!(reads.len(), 1);
        let halves = bisect(&reads[0], &items, Limits::default()).unwrap();
        let shape: Vec<_> = halves
            .iter()
            .map(|r| (r.address, r.count, r.points.clone()))
            .collect();
        assert_eq!(shape, vec![(0, 4, vec![0, 1]), (4, 6, vec![2, 3, 4])]);
        let one = plan(&items[3..4], Limits::default());
        assert!(bisect(&one[0], &items, Limits::default()).is_none());
    }

    fn table() -> impl Strategy<Value = Table> {
        prop_oneof![
            Just(Table::Holding),
            Just(Table::Input),
            Just(Table::Coil),
            Just(Table::Discrete)
        ]
    }

    proptest! {
        /// Hazard: splitting a refused read must neither lose a point (it would never be read
        /// again, silently) nor read registers the refused read did not cover.
        #[test]
        fn bisect_keeps_every_point_within_the_refused_read(
            raw in proptest::collection::vec((0u16..300, 1u16..=4), 2..40),
            max_gap in 0u16..20,
        ) {
            let items: Vec<Item> = raw.iter().enumerate()
                .map(|(i, (a, c))| item(i, Table::Holding, *a, *c)).collect();
            let limits = Limits { max_gap, ..Limits::default() };
            for read in plan(&items, limits) {
                let Some(parts) = bisect(&read, &items, limits) else {
                    prop_assert_eq!(read.points.len(), 1);
                    continue;
                };
                prop_assert!(parts.len() >= 2);
                let mut pts: Vec<usize> = parts.iter().flat_map(|r| r.points.clone()).collect();
                pts.sort_unstable();
                let mut want = read.points.clone();
                want.sort_unstable();
                prop_assert_eq!(pts, want);
                for r in &parts {
                    prop_assert!(r.address >= read.address && r.end() <= read.end());
                    prop_assert!(r.points.len() < read.points.len());
                }
            }
        }

        #[test]
        fn every_item_covered_and_no_read_over_the_limit(
            raw in proptest::collection::vec((0u8..3, table(), 0u16..5000, 1u16..=8), 0..300),
            max_gap in 0u16..40,
            max_registers in 1u16..=125,
        ) {
            let items: Vec<Item> = raw.iter().enumerate().map(|(i, (u, t, a, c))| Item {
                point: i, unit: *u, table: *t, address: *a,
                count: if t.is_bits() { 1 } else { (*c).min(max_registers) },
            }).collect();
            let limits = Limits { max_gap, max_registers, max_bits: 2000 };
            let reads = plan(&items, limits);
            for r in &reads {
                let max = if r.table.is_bits() { 2000 } else { max_registers };
                prop_assert!(r.count >= 1 && r.count <= max, "read {r:?} over the limit");
                prop_assert!(r.end() <= 65536);
            }
            let mut seen = vec![0; items.len()];
            for r in &reads {
                for &p in &r.points {
                    seen[p] += 1;
                    let it = &items[p];
                    prop_assert_eq!((it.unit, it.table), (r.unit, r.table));
                    prop_assert!(it.address >= r.address);
                    prop_assert!(it.address as u32 + it.count as u32 <= r.end());
                }
            }
            prop_assert!(seen.iter().all(|n| *n == 1), "every point exactly once");
            // No read holds a hole wider than max_gap.
            for r in &reads {
                let mut spans: Vec<(u32, u32)> = r.points.iter()
                    .map(|&p| (items[p].address as u32, items[p].address as u32 + items[p].count as u32))
                    .collect();
                spans.sort();
                let mut end = spans[0].1;
                prop_assert_eq!(spans[0].0, r.address as u32);
                for (a, e) in spans.into_iter().skip(1) {
                    prop_assert!(a <= end + max_gap as u32, "hole wider than max_gap");
                    end = end.max(e);
                }
                prop_assert_eq!(end, r.end());
            }
        }
    }
}
