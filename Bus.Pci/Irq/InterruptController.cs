namespace KernelModel.Pci.Irq;

/// <summary>The interrupt mechanisms of a PCI function.</summary>
public enum PciIrqType
{
    /// <summary>Legacy INTx: a level-triggered line.</summary>
    Intx,
    /// <summary>MSI: a message of consecutive data values.</summary>
    Msi,
    /// <summary>MSI-X: a message per entry of the table in BAR memory.</summary>
    Msix,
}

/// <summary>What became of an interrupt the device raised.</summary>
public enum PciInterruptResult
{
    /// <summary>A host handler ran.</summary>
    Delivered,
    /// <summary>Masked (INTx disable, an MSI-X vector or function mask): it stays pending.</summary>
    Pending,
    /// <summary>The mechanism is not enabled (or the vector is beyond those enabled).</summary>
    Disabled,
    /// <summary>The message reached the interrupt controller but no handler owns it.</summary>
    Spurious,
}

/// <summary>
/// The host's interrupt controller of a machine, as PCI functions see it: MSI and MSI-X messages
/// are DMA writes of a data value to the MSI window, and the data value names the host IRQ; a
/// legacy line is an IRQ of its own. Handlers are what request_irq() installs.
/// </summary>
public sealed class InterruptController
{
    /// <summary>The address MSI messages are written to (the x86 MSI window's base).</summary>
    public const ulong MsiAddress = 0xfee00000;

    /// <summary>The size of the MSI window.</summary>
    public const ulong MsiWindowSize = 0x100000;

    private readonly Dictionary<uint, Action> _handlers = [];
    private readonly Lock _lock = new();
    private uint _next = 32;

    /// <summary>Messages and line interrupts that found no handler.</summary>
    public long SpuriousInterrupts { get; private set; }

    /// <summary>Allocates <paramref name="count"/> consecutive host IRQs aligned to <paramref name="align"/> (multi-message MSI needs a power-of-two block).</summary>
    public uint Allocate(uint count, uint align = 1)
    {
        lock (_lock)
        {
            var first = (_next + align - 1) & ~(align - 1);
            _next = first + count;
            return first;
        }
    }

    /// <summary>request_irq(): EBUSY when the IRQ already has a handler.</summary>
    public bool RequestIrq(uint irq, Action handler)
    {
        lock (_lock)
        {
            return _handlers.TryAdd(irq, handler);
        }
    }

    /// <summary>free_irq().</summary>
    public void FreeIrq(uint irq)
    {
        lock (_lock)
        {
            _handlers.Remove(irq);
        }
    }

    /// <summary>True when <paramref name="irq"/> has a handler.</summary>
    public bool HasHandler(uint irq)
    {
        lock (_lock)
        {
            return _handlers.ContainsKey(irq);
        }
    }

    /// <summary>A message write arriving at the controller.</summary>
    public PciInterruptResult DeliverMessage(ulong address, uint data) =>
        address >= MsiAddress && address - MsiAddress < MsiWindowSize ? Raise(data) : Count();

    /// <summary>Raises host IRQ <paramref name="irq"/>: runs its handler outside the controller's lock.</summary>
    public PciInterruptResult Raise(uint irq)
    {
        Action? handler;
        lock (_lock)
        {
            _handlers.TryGetValue(irq, out handler);
        }

        if (handler is null)
        {
            return Count();
        }

        handler();
        return PciInterruptResult.Delivered;
    }

    private PciInterruptResult Count()
    {
        lock (_lock)
        {
            SpuriousInterrupts++;
        }

        return PciInterruptResult.Spurious;
    }
}
