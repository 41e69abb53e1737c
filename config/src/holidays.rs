//! Working days in mainland China: the State Council's yearly holiday schedule.
//!
//! CAC Order 16 art. 9 lets an exporter ask for a security assessment result to be extended
//! "within 60 working days before expiry", so expiry warnings count working days, not calendar
//! days. A working day is Monday to Friday unless the year's schedule gives it off (放假), plus
//! the weekend days the schedule turns into working days (调休上班, "make-up working days").
//!
//! The schedules are published each year by the General Office of the State Council, usually in
//! October or November for the next year; [`PUBLISHED`] holds the years shipped with crossline,
//! as published. An agent config can add a year (or replace a shipped one) with `[[holidays]]`
//! entries. Outside the covered years, [`WorkCalendar::working_days_after`] returns `None` and
//! the caller falls back to calendar days (and says so).

use crate::time::Date;

/// One year's schedule: the days off and the make-up working days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolidayYear {
    pub year: i32,
    /// Days off (holidays and the weekdays moved into them), any order.
    pub off: Vec<Date>,
    /// Weekend days that are working days (make-up days), any order.
    pub workdays: Vec<Date>,
}

/// A (month, day) pair.
pub type MonthDay = (u8, u8);

/// A shipped schedule: (month, day) ranges of days off, inclusive, and make-up working days.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub year: i32,
    /// The notice it comes from.
    pub source: &'static str,
    pub off: &'static [(MonthDay, MonthDay)],
    pub workdays: &'static [MonthDay],
}

/// The schedules shipped with crossline, as published by the General Office of the State
/// Council. Checked against the notices' text; each make-up day is a Saturday or Sunday.
pub const PUBLISHED: [Published; 3] = [
    Published {
        year: 2024,
        source: "国办发明电〔2023〕7号 (2023-10-25)",
        off: &[
            ((1, 1), (1, 1)),
            ((2, 10), (2, 17)),
            ((4, 4), (4, 6)),
            ((5, 1), (5, 5)),
            ((6, 10), (6, 10)),
            ((9, 15), (9, 17)),
            ((10, 1), (10, 7)),
        ],
        workdays: &[
            (2, 4),
            (2, 18),
            (4, 7),
            (4, 28),
            (5, 11),
            (9, 14),
            (9, 29),
            (10, 12),
        ],
    },
    Published {
        year: 2025,
        source: "国办发明电〔2024〕12号 (2024-11-12)",
        off: &[
            ((1, 1), (1, 1)),
            ((1, 28), (2, 4)),
            ((4, 4), (4, 6)),
            ((5, 1), (5, 5)),
            ((5, 31), (6, 2)),
            ((10, 1), (10, 8)),
        ],
        workdays: &[(1, 26), (2, 8), (4, 27), (9, 28), (10, 11)],
    },
    Published {
        year: 2026,
        source: "国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04)",
        off: &[
            ((1, 1), (1, 3)),
            ((2, 15), (2, 23)),
            ((4, 4), (4, 6)),
            ((5, 1), (5, 5)),
            ((6, 19), (6, 21)),
            ((9, 25), (9, 27)),
            ((10, 1), (10, 7)),
        ],
        workdays: &[(1, 4), (2, 14), (2, 28), (5, 9), (9, 20), (10, 10)],
    },
];

impl Published {
    /// The schedule as dates (the table is checked by a test, so every date exists).
    pub fn to_year(&self) -> HolidayYear {
        let y = self.year;
        let mut off = Vec::new();
        for &((m1, d1), (m2, d2)) in self.off {
            if let (Some(a), Some(b)) = (Date::new(y, m1, d1), Date::new(y, m2, d2)) {
                for day in a.days_since_epoch()..=b.days_since_epoch() {
                    off.push(Date::from_days(day));
                }
            }
        }
        let workdays = self
            .workdays
            .iter()
            .filter_map(|&(m, d)| Date::new(y, m, d))
            .collect();
        HolidayYear {
            year: y,
            off,
            workdays,
        }
    }
}

/// Working-day arithmetic over the covered years: one prefix sum, so a count is two lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkCalendar {
    /// Covered years, sorted.
    years: Vec<i32>,
    /// Day number (since 1970-01-01) of 1 January of the first covered year.
    first_day: i64,
    /// `cum[i]`: working days in `[first_day, first_day + i)`.
    cum: Vec<u32>,
}

impl Default for WorkCalendar {
    fn default() -> Self {
        WorkCalendar::new(&[])
    }
}

impl WorkCalendar {
    /// The shipped years plus `extra` (a year in `extra` replaces the shipped one).
    pub fn new(extra: &[HolidayYear]) -> WorkCalendar {
        let mut years: Vec<HolidayYear> = PUBLISHED
            .iter()
            .filter(|p| !extra.iter().any(|e| e.year == p.year))
            .map(Published::to_year)
            .collect();
        years.extend(extra.iter().cloned());
        years.sort_by_key(|y| y.year);
        years.dedup_by_key(|y| y.year);
        let (Some(first), Some(last)) = (years.first(), years.last()) else {
            return WorkCalendar {
                years: Vec::new(),
                first_day: 0,
                cum: vec![0],
            };
        };
        let first_day = crate::time::days_from_civil(first.year, 1, 1);
        let end_day = crate::time::days_from_civil(last.year + 1, 1, 1);
        let len = usize::try_from(end_day - first_day).unwrap_or(0);
        // Working by weekday, then the schedules' changes.
        let mut working: Vec<bool> = (0..len)
            .map(|i| Date::from_days(first_day + i as i64).weekday() < 5)
            .collect();
        for y in &years {
            for (list, value) in [(&y.off, false), (&y.workdays, true)] {
                for d in list {
                    if let Some(w) = usize::try_from(d.days_since_epoch() - first_day)
                        .ok()
                        .and_then(|i| working.get_mut(i))
                    {
                        *w = value;
                    }
                }
            }
        }
        let mut cum = Vec::with_capacity(len + 1);
        let mut n = 0u32;
        cum.push(0);
        for w in working {
            n += u32::from(w);
            cum.push(n);
        }
        WorkCalendar {
            years: years.iter().map(|y| y.year).collect(),
            first_day,
            cum,
        }
    }

    /// The covered years, sorted.
    pub fn years(&self) -> &[i32] {
        &self.years
    }

    /// Whether the schedule of `year` is known.
    pub fn covers(&self, year: i32) -> bool {
        self.years.binary_search(&year).is_ok()
    }

    /// Whether `d` is a working day; `None` when its year is not covered.
    pub fn is_working_day(&self, d: Date) -> Option<bool> {
        let before = Date::from_days(d.days_since_epoch() - 1);
        if !self.covers(d.year) {
            return None;
        }
        self.working_days_after(before, d).map(|n| n == 1)
    }

    /// Working days `d` with `from < d <= to` (0 when `to <= from`); `None` when a year in
    /// between is not covered.
    pub fn working_days_after(&self, from: Date, to: Date) -> Option<i64> {
        if to <= from {
            return Some(0);
        }
        let first = Date::from_days(from.days_since_epoch() + 1);
        if !(first.year..=to.year).all(|y| self.covers(y)) {
            return None;
        }
        let at = |d: Date| -> Option<i64> {
            let i = usize::try_from(d.days_since_epoch() - self.first_day + 1).ok()?;
            self.cum.get(i).map(|&n| i64::from(n))
        };
        Some(at(to)? - at(from)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u8, day: u8) -> Date {
        Date::new(y, m, day).expect("date")
    }

    #[test]
    fn published_table_is_consistent() {
        for p in PUBLISHED {
            for &((m1, d1), (m2, d2)) in p.off {
                let a = Date::new(p.year, m1, d1).expect("date exists");
                let b = Date::new(p.year, m2, d2).expect("date exists");
                assert!(a <= b, "{} {a}..{b}", p.year);
            }
            let y = p.to_year();
            for w in &y.workdays {
                assert!(
                    w.weekday() >= 5,
                    "{w} is a make-up day but not a weekend day"
                );
                assert!(!y.off.contains(w), "{w} is both off and a make-up day");
            }
        }
    }

    #[test]
    fn spring_festival_and_national_day() {
        let c = WorkCalendar::default();
        // 2026 Spring Festival: 15-23 February off, Saturdays 14 and 28 February worked.
        assert_eq!(c.is_working_day(d(2026, 2, 13)), Some(true));
        assert_eq!(c.is_working_day(d(2026, 2, 14)), Some(true));
        assert_eq!(c.is_working_day(d(2026, 2, 16)), Some(false));
        assert_eq!(c.is_working_day(d(2026, 2, 23)), Some(false));
        assert_eq!(c.is_working_day(d(2026, 2, 24)), Some(true));
        assert_eq!(c.is_working_day(d(2026, 2, 28)), Some(true));
        assert_eq!(c.is_working_day(d(2026, 3, 1)), Some(false));
        // February 2026: 20 weekdays, 6 of them off (16-20, 23), plus 2 make-up Saturdays.
        assert_eq!(
            c.working_days_after(d(2026, 1, 31), d(2026, 2, 28)),
            Some(16)
        );
        // 2025 National Day and Mid-Autumn: 1-8 October off, 28 Sep and 11 Oct worked.
        // 27 Sep (Sat) .. 12 Oct (Sun): 28 Sep, 29-30 Sep, 9-10 Oct, 11 Oct = 6.
        assert_eq!(
            c.working_days_after(d(2025, 9, 26), d(2025, 10, 12)),
            Some(6)
        );
        // A year boundary inside the table.
        assert_eq!(
            c.working_days_after(d(2025, 12, 30), d(2026, 1, 5)),
            // 31 Dec (Wed), 4 Jan (Sun, make-up), 5 Jan (Mon).
            Some(3)
        );
    }

    #[test]
    fn sixty_working_days_are_more_than_sixty_calendar_days() {
        let c = WorkCalendar::default();
        // The filing ends on 30 April 2026: the 60th working day before it.
        let end = d(2026, 4, 30);
        let mut day = end.days_since_epoch();
        while c.working_days_after(Date::from_days(day), end) != Some(60) {
            day -= 1;
        }
        let start = Date::from_days(day);
        // Across the Spring Festival the window opens in January, 100 calendar days ahead.
        assert!(end.days_since_epoch() - day > 84, "{start}");
        assert_eq!(start, d(2026, 1, 29));
    }

    #[test]
    fn uncovered_years_and_added_years() {
        let c = WorkCalendar::default();
        assert_eq!(c.working_days_after(d(2026, 12, 1), d(2027, 1, 10)), None);
        assert_eq!(c.is_working_day(d(2023, 5, 4)), None);
        assert_eq!(c.is_working_day(d(2024, 1, 1)), Some(false));
        assert_eq!(c.is_working_day(d(2024, 1, 2)), Some(true));
        assert_eq!(c.is_working_day(d(2026, 12, 31)), Some(true));
        // Adding 2027 (illustrative: 1 January off, Saturday 9 January a make-up day).
        let y = HolidayYear {
            year: 2027,
            off: vec![d(2027, 1, 1)],
            workdays: vec![d(2027, 1, 9)],
        };
        let c = WorkCalendar::new(&[y]);
        assert_eq!(c.years(), &[2024, 2025, 2026, 2027]);
        // 31 Dec 2026 (Thu) .. 10 Jan 2027 (Sun): 31 Dec, 4-8 Jan, 9 Jan = 7.
        assert_eq!(
            c.working_days_after(d(2026, 12, 30), d(2027, 1, 10)),
            Some(7)
        );
    }
}
