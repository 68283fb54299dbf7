//! The `--sweep` grammar: `SCENARIO.PARAM=a,b,c[,SCENARIO.PARAM2=x,y]`.

use crate::replay::ReplayError;

/// One axis of a sweep grid: a parameter and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The parameter as `--set` takes it: `feb.safe_concurrent_starts`.
    pub param: String,
    /// Its values, as written.
    pub values: Vec<String>,
}

impl Axis {
    /// The scenario prefix of the parameter (`feb`, `nov`).
    pub fn scenario(&self) -> &str {
        self.param.split_once('.').map_or("", |(s, _)| s)
    }

    /// The parameter without its scenario prefix.
    pub fn name(&self) -> &str {
        self.param.split_once('.').map_or(&self.param, |(_, p)| p)
    }
}

/// Parses every `--sweep` argument into axes. Within one argument, a token
/// with `=` starts a new axis and the tokens after it are more values of
/// it: `feb.a=1,2,feb.b=3,4` is two axes of two values each.
pub fn parse(args: &[String]) -> Result<Vec<Axis>, ReplayError> {
    let mut axes: Vec<Axis> = Vec::new();
    for arg in args {
        let bad = |reason: String| ReplayError::BadOverride {
            name: arg.clone(),
            reason,
        };
        let mut in_this_arg = false;
        for token in arg.split(',').map(str::trim) {
            if let Some((param, first)) = token.split_once('=') {
                let param = param.trim();
                if !param.contains('.') {
                    return Err(bad(format!(
                        "`{param}` must be SCENARIO.PARAM, e.g. feb.safe_concurrent_starts"
                    )));
                }
                if axes.iter().any(|a| a.param == param) {
                    return Err(bad(format!("`{param}` is swept twice")));
                }
                axes.push(Axis {
                    param: param.to_owned(),
                    values: vec![first.trim().to_owned()],
                });
                in_this_arg = true;
            } else if let (true, Some(axis)) = (in_this_arg, axes.last_mut()) {
                axis.values.push(token.to_owned());
            } else {
                return Err(bad(
                    "expected SCENARIO.PARAM=a,b,c[,SCENARIO.PARAM2=x,y]".to_owned()
                ));
            }
        }
    }
    for axis in &axes {
        if axis.values.iter().any(String::is_empty) {
            return Err(ReplayError::BadOverride {
                name: axis.param.clone(),
                reason: "a sweep value is empty (two commas in a row?)".to_owned(),
            });
        }
    }
    if let Some(first) = axes.first() {
        let scenario = first.scenario();
        if let Some(other) = axes.iter().find(|a| a.scenario() != scenario) {
            return Err(ReplayError::BadOverride {
                name: other.param.clone(),
                reason: format!(
                    "one sweep covers one scenario; `{}` is `{scenario}`",
                    first.param
                ),
            });
        }
    }
    Ok(axes)
}

/// Every combination of the axes' values, first axis slowest; each cell is
/// one value index per axis.
pub fn cells(axes: &[Axis]) -> Vec<Vec<usize>> {
    let mut cells = vec![Vec::new()];
    for axis in axes {
        cells = cells
            .into_iter()
            .flat_map(|cell| {
                (0..axis.values.len()).map(move |i| {
                    let mut next = cell.clone();
                    next.push(i);
                    next
                })
            })
            .collect();
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn one_argument_can_hold_several_axes() {
        let axes = parse(&args(&["feb.a=1,2,3,feb.b=0.5,1"])).unwrap();
        assert_eq!(axes.len(), 2);
        assert_eq!(axes[0].param, "feb.a");
        assert_eq!(axes[0].values, ["1", "2", "3"]);
        assert_eq!(axes[1].name(), "b");
        assert_eq!(axes[1].values, ["0.5", "1"]);
        let repeated = parse(&args(&["feb.a=1,2,3", "feb.b=0.5,1"])).unwrap();
        assert_eq!(axes, repeated);
    }

    #[test]
    fn malformed_sweeps_are_refused() {
        for bad in [
            "1,2",
            "a=1,2",
            "feb.a=1,,2",
            "feb.a=1,feb.a=2",
            "feb.a=1,nov.b=2",
        ] {
            assert!(parse(&args(&[bad])).is_err(), "{bad}");
        }
    }

    #[test]
    fn cells_are_the_cartesian_product_first_axis_slowest() {
        let axes = parse(&args(&["feb.a=1,2,feb.b=x,y,z"])).unwrap();
        let cells = cells(&axes);
        assert_eq!(cells.len(), 6);
        assert_eq!(cells[0], [0, 0]);
        assert_eq!(cells[1], [0, 1]);
        assert_eq!(cells[5], [1, 2]);
        assert_eq!(super::cells(&[]), vec![Vec::<usize>::new()]);
    }
}
