"""remote_tlb_flush versus remote_tlb_flush_requests, as kvm_flush_remote_tlbs() counts them.

virt/kvm/kvm_main.c: kvm_flush_remote_tlbs() bumps remote_tlb_flush_requests on every call,
and remote_tlb_flush only if kvm_arch_flush_remote_tlbs() did the flush (x86: only with
Hyper-V, else -ENOTSUPP) or kvm_make_all_cpus_request(KVM_REQ_TLB_FLUSH) sent an IPI,
which it does only to CPUs running another vCPU in guest mode than the requester's.  The
model's L0 runs one vCPU and requests its flushes from that vCPU's own exits; a memslot
change comes from the VMM's ioctl thread while the vCPU runs, so it IPIs.

account_shadowed() flushes too: kvm_mmu_slot_gfn_write_protect() (directly for a level-1
page, inside __kvm_write_track_add_gfn() for level >= 2) returns true when it made L0's
writable mapping of L1's table page read-only, and the caller then flushes.
"""

from __future__ import annotations

from mmu_model import mmu
from mmu_model.constants import ACC_EXEC_MASK, ACC_USER_MASK


def test_flushes_from_the_vcpus_own_exits_are_requests_without_an_ipi(make_world):
    """L2's first touch of one 4 KiB region builds root, PDPT, PD and PT (4-level EPT).  L1
    wrote every one of those table pages before L0 shadowed it, so each account_shadowed()
    write-protects a writable mapping: 4 requests.  None IPIs anyone."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    s = w.stats()
    assert s["mmu_shadow_pages"] == 4
    assert s["remote_tlb_flush_requests"] == 4
    assert s["remote_tlb_flush"] == 0


def test_a_page_already_write_protected_needs_no_flush(make_world):
    """A second shadow page for a gfn L0 already maps read-only (an access=-ux role of the
    same PT page): kvm_mmu_slot_gfn_write_protect() changes nothing, so no request."""
    w = make_world()
    w.boot()
    w.touch(0, [0])
    pd = w.sp(w.pd(0))
    w.step()
    before = w.stats()
    w.link_new(pd, 9, w.pt(0, 0).gfn, access=ACC_EXEC_MASK | ACC_USER_MASK)
    after = w.stats()
    assert after["mmu_shadow_pages"] == before["mmu_shadow_pages"] + 1  # a new page, not a hit
    assert after["remote_tlb_flush_requests"] == before["remote_tlb_flush_requests"]


def test_a_memslot_change_ipis_the_running_vcpu(make_world):
    """kvm_mmu_zap_all_fast() from the VMM's thread: its one commit (kvm_zap_obsolete_pages
    then kvm_mmu_commit_zap_page) requests a flush that IPIs the vCPU running L2, so both
    counters go up by one."""
    w = make_world()
    w.boot()
    w.touch(0, [0, 1])
    w.step("memslot_change")
    before = w.stats()
    mmu.kvm_mmu_zap_all_fast(w.kvm)
    after = w.stats()
    assert after["remote_tlb_flush_requests"] - before["remote_tlb_flush_requests"] == 1
    assert after["remote_tlb_flush"] - before["remote_tlb_flush"] == 1
    # Back on the vCPU: the next flush is a request only.
    w.touch(0, [2])
    assert w.stats()["remote_tlb_flush"] == after["remote_tlb_flush"]
