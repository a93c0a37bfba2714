//! A node's role for one world: the one place it is kept, so that an
//! operator command or the lease can change it.

/// Who admits inputs for a world on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// This node admits inputs; followers replicate it.
    Authority,
    /// This node replicates the authority at `authority` (a URL) and admits
    /// nothing.
    Follower {
        /// Where the authority is (`http://HOST:PORT`, `nats://HOST:PORT`).
        authority: String,
    },
    /// This node left input authority (`federation leave`): it admits
    /// nothing and follows nobody until it rejoins or is promoted.
    Standby,
    /// This node followed and stopped: its roots differed from the
    /// authority's at `tick` (a peer root mismatch incident).
    Diverged {
        /// The authority it followed.
        authority: String,
        /// The first divergent tick.
        tick: u64,
    },
}

impl Role {
    /// The name status and `/authority` report: `authority`, `follower`, `diverged`.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Authority => "authority",
            Role::Follower { .. } => "follower",
            Role::Standby => "standby",
            Role::Diverged { .. } => "diverged",
        }
    }

    /// Whether this node admits inputs.
    pub fn admits(&self) -> bool {
        matches!(self, Role::Authority)
    }

    /// The authority's URL, when another node is the authority.
    pub fn authority(&self) -> Option<&str> {
        match self {
            Role::Authority | Role::Standby => None,
            Role::Follower { authority } | Role::Diverged { authority, .. } => Some(authority),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn only_the_authority_admits_and_others_name_it() {
        let url = "http://127.0.0.1:7000".to_string();
        let roles = [
            Role::Authority,
            Role::Follower {
                authority: url.clone(),
            },
            Role::Diverged {
                authority: url.clone(),
                tick: 9,
            },
            Role::Standby,
        ];
        let seen: Vec<_> = roles
            .iter()
            .map(|role| (role.name(), role.admits(), role.authority()))
            .collect();
        assert_eq!(
            seen,
            [
                ("authority", true, None),
                ("follower", false, Some(url.as_str())),
                ("diverged", false, Some(url.as_str())),
                ("standby", false, None),
            ]
        );
    }
}
