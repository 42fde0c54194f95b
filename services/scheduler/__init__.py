"""GPU scheduler: one owner of the GPU budget, granting leases by priority."""
