"""Knowledge packs: declarative tools, resources and prompts over business systems."""
