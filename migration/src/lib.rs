//! Migrations of cog.
