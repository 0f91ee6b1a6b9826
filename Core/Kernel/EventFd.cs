using System.Buffers.Binary;

namespace KernelModel.Kernel;

/// <summary>eventfd(2) flags.</summary>
[Flags]
public enum EventFdFlags
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>EFD_SEMAPHORE: each read takes 1.</summary>
    Semaphore = 1,
    /// <summary>EFD_NONBLOCK (the model never blocks; a read of 0 is always EAGAIN).</summary>
    NonBlock = 0x800,
    /// <summary>EFD_CLOEXEC.</summary>
    CloExec = 0x80000,
}

/// <summary>
/// An eventfd's context (struct eventfd_ctx): a 64-bit counter. The kernel side signals it
/// (eventfd_signal); user space reads and writes 8-byte values through its file.
/// Nothing in the model blocks, so where Linux would sleep the calls return EAGAIN.
/// </summary>
public sealed class EventFdContext
{
    private readonly Lock _lock = new();
    private ulong _count;

    internal EventFdContext(ulong initial, EventFdFlags flags)
    {
        _count = initial;
        Flags = flags;
    }

    /// <summary>The flags it was created with.</summary>
    public EventFdFlags Flags { get; }

    /// <summary>The current counter.</summary>
    public ulong Count
    {
        get
        {
            lock (_lock)
            {
                return _count;
            }
        }
    }

    /// <summary>How many times the kernel side has signalled it.</summary>
    public long Signals { get; private set; }

    /// <summary>eventfd_signal(): adds 1, saturating at ULLONG_MAX as the kernel does.</summary>
    public void Signal()
    {
        lock (_lock)
        {
            // Like eventfd_signal_mask(): only a user write is held below ULLONG_MAX; the kernel
            // side may reach it (poll then reports EPOLLERR).
            if (_count < ulong.MaxValue)
            {
                _count++;
            }

            Signals++;
        }
    }

    internal long UserRead(Span<byte> buffer)
    {
        // Like eventfd_read(): an 8-byte buffer at least; a zero counter would block.
        if (buffer.Length < sizeof(ulong))
        {
            return -(long)Errno.EINVAL;
        }

        lock (_lock)
        {
            if (_count == 0)
            {
                return -(long)Errno.EAGAIN;
            }

            var value = (Flags & EventFdFlags.Semaphore) != 0 ? 1 : _count;
            _count -= value;
            BinaryPrimitives.WriteUInt64LittleEndian(buffer, value);
            return sizeof(ulong);
        }
    }

    internal long UserWrite(ReadOnlySpan<byte> buffer)
    {
        // Like eventfd_write(): ULLONG_MAX is invalid; an overflow past ULLONG_MAX - 1 would block.
        if (buffer.Length < sizeof(ulong))
        {
            return -(long)Errno.EINVAL;
        }

        var value = BinaryPrimitives.ReadUInt64LittleEndian(buffer);
        if (value == ulong.MaxValue)
        {
            return -(long)Errno.EINVAL;
        }

        lock (_lock)
        {
            // eventfd_write() proceeds only while ULLONG_MAX - count > value; the count may already
            // be ULLONG_MAX after kernel signals, so compare without underflowing.
            if (ulong.MaxValue - _count <= value)
            {
                return -(long)Errno.EAGAIN;
            }

            _count += value;
            return sizeof(ulong);
        }
    }
}

/// <summary>The file operations of an eventfd.</summary>
internal sealed class EventFdOperations : FileOperations
{
    public static readonly EventFdOperations Instance = new();

    public static File CreateFile(ulong initial, EventFdFlags flags)
    {
        var ctx = new EventFdContext(initial, flags);
        return new File(Instance, new Inode("[eventfd]"), ctx);
    }

    public override long Read(File file, Span<byte> buffer, long offset) =>
        ((EventFdContext)file.PrivateData!).UserRead(buffer);

    public override long Write(File file, ReadOnlySpan<byte> buffer, long offset) =>
        ((EventFdContext)file.PrivateData!).UserWrite(buffer);
}
