//! One list per family for its bug switches: the enum its `[params]` accept and the `BUGS`
//! table `distsim list` prints are generated from the same lines, so the name a scenario
//! writes, the variant the code matches on and the rule the bug breaks cannot drift apart.

/// Declares a family's bug enum and its `BUGS` table from one list of
/// `Variant = "name": "rule"` lines (each with a doc comment).
macro_rules! bug_switches {
    (
        $(#[$meta:meta])*
        pub enum $enum:ident {
            $( $(#[doc = $doc:literal])* $var:ident = $name:literal : $rule:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
        pub enum $enum {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $var, )+
        }

        impl $enum {
            /// Every switch, in declaration order.
            pub const ALL: &'static [$enum] = &[$($enum::$var),+];

            /// The value of `bug = "..."` that selects this switch.
            pub const fn name(self) -> &'static str {
                match self { $($enum::$var => $name,)+ }
            }

            /// The protocol rule this switch breaks, in one line.
            pub const fn rule(self) -> &'static str {
                match self { $($enum::$var => $rule,)+ }
            }
        }

        /// The switchable bugs, one line each on the rule they break (generated from the enum).
        pub const BUGS: &[$crate::Bug] = &[
            $( $crate::Bug { name: $name, rule: $rule }, )+
        ];
    };
}
