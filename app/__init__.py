"""FastAPI web layer of the shadow-MMU visualizer; depends on mmu_model, never the reverse."""
