"""Follow-up audit: recommendation tracking, guideline checks and CMS QPP measures."""
