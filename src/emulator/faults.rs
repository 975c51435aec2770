//! Reproducible fault injection: a seeded generator decides which request
//! fails and how, so a failing reliability test can be replayed.

use std::sync::Mutex;

/// What happens to one API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answer with this status (500, 503 or 429) without doing anything.
    Status(u16),
    /// Do the work (accept the restore), then answer with this status:
    /// the client cannot tell that it succeeded.
    StatusAfterWork(u16),
    /// Drop the connection without doing anything.
    Reset,
    /// Do the work, then drop the connection.
    ResetAfterWork,
}

pub struct Faults {
    rate: f64,
    reset_rate: f64,
    rng: Mutex<fastrand::Rng>,
}

impl Faults {
    pub fn new(rate: f64, reset_rate: f64, seed: u64) -> Self {
        Faults {
            rate: rate.clamp(0.0, 1.0),
            reset_rate: reset_rate.clamp(0.0, 1.0),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    fn roll(&self) -> (f64, f64, u32) {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        (rng.f64(), rng.f64(), rng.u32(0..3))
    }

    /// The fate of an API request; `does_work` is true for requests that
    /// change state (POST restores), which can fail after the change.
    pub fn draw(&self, does_work: bool) -> Fault {
        if self.rate == 0.0 && self.reset_rate == 0.0 {
            return Fault::None;
        }
        let (p, half, pick) = self.roll();
        let after = does_work && half < 0.5;
        if p < self.rate {
            let status = [500, 503, 429][pick as usize];
            if after {
                Fault::StatusAfterWork(status)
            } else {
                Fault::Status(status)
            }
        } else if p < self.rate + self.reset_rate {
            if after {
                Fault::ResetAfterWork
            } else {
                Fault::Reset
            }
        } else {
            Fault::None
        }
    }

    /// Whether to drop a TDS connection at this point.
    pub fn drop_connection(&self) -> bool {
        self.reset_rate > 0.0 && self.roll().0 < self.reset_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_come_at_the_asked_rate_and_replay_with_the_seed() {
        let draw = |seed| {
            let f = Faults::new(0.2, 0.05, seed);
            (0..10_000).map(|_| f.draw(true)).collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        let statuses = a
            .iter()
            .filter(|f| matches!(f, Fault::Status(_) | Fault::StatusAfterWork(_)))
            .count();
        let resets = a
            .iter()
            .filter(|f| matches!(f, Fault::Reset | Fault::ResetAfterWork))
            .count();
        assert!((1800..2200).contains(&statuses), "{statuses}");
        assert!((400..600).contains(&resets), "{resets}");
        assert!(a.contains(&Fault::StatusAfterWork(503)) && a.contains(&Fault::ResetAfterWork));
        assert!(Faults::new(0.0, 0.0, 1).draw(true) == Fault::None);
    }
}
