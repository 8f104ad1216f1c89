"""Model of L0 KVM's x86 shadow MMU while it shadows an L1 hypervisor's EPT tables."""
