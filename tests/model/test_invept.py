"""L1's INVEPT as vmx/nested.c handle_invept() emulates it.

VMX_EPT_EXTENT_GLOBAL: kvm_mmu_free_roots(KVM_MMU_ROOTS_ALL) on guest_mmu.
VMX_EPT_EXTENT_CONTEXT: only the current root and the prev_roots[i] for which
nested_ept_root_matches(root, operand.eptp); the other cached roots stay (root_count kept).
L1's KVM issues global from vmx_flush_tlb_all() (ept_sync_global(), its KVM_REQ_TLB_FLUSH
handler) and single-context from vmx_flush_tlb_current() (ept_sync_context() of the EPTP
it just loaded), when the CPU (here: L0's nested VMX) offers single-context INVEPT.
"""

from __future__ import annotations

import pytest


def _two_roots(make_world):
    """Root A with a tree, then L1's new EPTP B: kvm_mmu_new_pgd() rotates A into
    prev_roots[0] (fast_pgd_switch found no cached root for B) and loads B."""
    w = make_world()
    a_t = w.boot()
    w.touch(0, [0])
    a = w.sp(a_t)
    b_t = w.guest.new_eptp()
    assert b_t is a_t
    b = w.kvm.root
    assert b is not None
    assert w.kvm.prev_roots == [a]
    return w, a, b


def test_single_context_invept_frees_only_the_matching_root(make_world):
    """INVEPT single-context for A's EPTP: prev_roots[0] matches, the current root B does
    not: A's root_count drops to 0 (a valid ex-root), B stays loaded with its count."""
    w, a, b = _two_roots(make_world)
    w.guest.single_context = True
    w.guest.invept(reload=False, eptp_gfn=a.gfn)
    assert w.kvm.root is b
    assert b.root_count == 1
    assert w.kvm.prev_roots == []
    assert a.root_count == 0
    assert not a.role.invalid


@pytest.mark.parametrize("single_context", [False, True])
def test_invept_for_the_current_eptp(make_world, single_context):
    """INVEPT for B's EPTP: single-context drops B and keeps A cached; global drops both."""
    w, a, b = _two_roots(make_world)
    w.guest.single_context = single_context
    w.guest.invept(reload=False)  # L2's current EPTP, B
    assert w.kvm.root is None
    assert b.root_count == 0
    assert (a.root_count, w.kvm.prev_roots) == ((1, [a]) if single_context else (0, []))
