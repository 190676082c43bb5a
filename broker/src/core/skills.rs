//! The skills every mesh can list and fetch, loaded from a JSON array.

use std::path::Path;

use tether_proto::mesh::wire::{Skill, SkillSummary};

use super::load_error::{read_file, LoadError};

/// The skills served by `list_skills` and `get_skill`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkillBook {
    skills: Vec<Skill>,
}

impl SkillBook {
    /// A book holding these skills.
    pub fn new(skills: Vec<Skill>) -> Self {
        SkillBook { skills }
    }

    /// Parses `[{name, description, instructions, tags, author, createdAt, manifest?}]`.
    pub fn from_json_str(text: &str) -> Result<Self, LoadError> {
        Ok(SkillBook::new(serde_json::from_str(text)?))
    }

    /// Reads and parses a skills file (see [`SkillBook::from_json_str`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        Self::from_json_str(&read_file(path.as_ref())?)
    }

    /// Summaries of the skills whose name, description or a tag contains `query`
    /// (case-insensitive); every skill when there is no query.
    pub fn list(&self, query: Option<&str>) -> Vec<SkillSummary> {
        let needle = query.map(str::to_lowercase).filter(|q| !q.is_empty());
        self.skills
            .iter()
            .filter(|s| {
                needle.as_deref().is_none_or(|q| {
                    s.name.to_lowercase().contains(q)
                        || s.description.to_lowercase().contains(q)
                        || s.tags.iter().any(|t| t.to_lowercase().contains(q))
                })
            })
            .map(|s| SkillSummary {
                name: s.name.clone(),
                description: s.description.clone(),
                tags: s.tags.clone(),
                author: s.author.clone(),
                created_at: s.created_at.clone(),
            })
            .collect()
    }

    /// The skill with exactly this name.
    pub fn get(&self, name: &str) -> Option<&Skill> {
        self.skills.iter().find(|s| s.name == name)
    }
}
