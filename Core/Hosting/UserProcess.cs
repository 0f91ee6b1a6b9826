using KernelModel.Kernel;
using KernelModel.Mm;

namespace KernelModel;

/// <summary>What a process is started with.</summary>
public sealed record ProcessOptions
{
    /// <summary>RLIMIT_MEMLOCK in bytes (Linux's default is 8 MiB); ulong.MaxValue for unlimited.</summary>
    public ulong MemlockLimit { get; init; } = 8UL << 20;

    /// <summary>CAP_IPC_LOCK: exempt from RLIMIT_MEMLOCK.</summary>
    public bool CapIpcLock { get; init; }

    /// <summary>RLIMIT_NOFILE.</summary>
    public int FileLimit { get; init; } = 1024;
}

/// <summary>A signal the model delivered to the process (SIGBUS, SIGSEGV).</summary>
public sealed record SignalInfo(int Signo, ulong Address)
{
    /// <summary>SIGBUS.</summary>
    public const int SIGBUS = 7;

    /// <summary>SIGSEGV.</summary>
    public const int SIGSEGV = 11;

    /// <inheritdoc />
    public override string ToString() => $"{(Signo == SIGBUS ? "SIGBUS" : Signo == SIGSEGV ? "SIGSEGV" : $"signal {Signo}")} at 0x{Address:x}";
}

/// <summary>
/// A user process: its address space, fd table and signals, and the system calls of the stable
/// surface (shared/DESIGN.md). Every call returns what Linux returns (a value or a negative errno)
/// and never throws; an unexpected exception inside the model is recorded as an oops and the call
/// returns -EIO. Deferred kernel work runs at each return to user space.
/// </summary>
public sealed class UserProcess
{
    [ThreadStatic]
    private static UserProcess? t_current;

    private readonly List<SignalInfo> _signals = [];
    private bool _exited;

    internal UserProcess(Machine machine, int pid, ProcessOptions options)
    {
        Machine = machine;
        Pid = pid;
        Mm = new MmStruct(machine.Memory, machine.Spec.Thp)
        {
            MemlockLimit = options.MemlockLimit,
            CapIpcLock = options.CapIpcLock,
        };
        Files = new FdTable(options.FileLimit);
    }

    /// <summary>The machine it runs on.</summary>
    public Machine Machine { get; }

    /// <summary>The process id.</summary>
    public int Pid { get; }

    /// <summary>The address space.</summary>
    public MmStruct Mm { get; }

    /// <summary>The fd table.</summary>
    public FdTable Files { get; }

    /// <summary>
    /// current: the process on whose behalf the kernel model is running on this thread (set for the
    /// duration of each system call), or null outside one. Backends read it as the kernel reads
    /// current->mm, e.g. to pin the caller's pages at VFIO_IOMMU_MAP_DMA.
    /// </summary>
    public static UserProcess? Current => t_current;

    /// <summary>Signals delivered so far.</summary>
    public IReadOnlyList<SignalInfo> Signals => _signals;

    /// <summary>open(2).</summary>
    public int Open(string path) => (int)Syscall(nameof(Open), () =>
    {
        var file = Machine.OpenDevNode(path);
        if (!file.TryGetValue(out var f))
        {
            return -(long)file.Error;
        }

        var opened = f.Operations.Open(f);
        if (!opened.IsOk)
        {
            f.DiscardUnopened();
            return -(long)opened.Error;
        }

        var fd = Files.Install(f);
        if (!fd.IsOk)
        {
            f.Put();
            return -(long)fd.Error;
        }

        return fd.Value;
    });

    /// <summary>close(2).</summary>
    public int Close(int fd) => (int)Syscall(nameof(Close), () => Files.Close(fd).ToSyscall());

    /// <summary>ioctl(2) with a pointer argument: the struct bytes exactly as in linux/vfio.h.</summary>
    public long Ioctl(int fd, uint request, Span<byte> arg)
    {
        var file = Files.Get(fd);
        if (!file.TryGetValue(out var f))
        {
            return -(long)file.Error;
        }

        var previous = Enter();
        try
        {
            return f.Operations.Ioctl(f, request, new IoctlArg(arg));
        }
        catch (Exception e)
        {
            return Oops(nameof(Ioctl), e);
        }
        finally
        {
            f.Put();
            ReturnToUser(previous);
        }
    }

    /// <summary>ioctl(2) with an integer argument (CHECK_EXTENSION, SET_IOMMU).</summary>
    public long Ioctl(int fd, uint request, ulong value)
    {
        var file = Files.Get(fd);
        if (!file.TryGetValue(out var f))
        {
            return -(long)file.Error;
        }

        var previous = Enter();
        try
        {
            return f.Operations.Ioctl(f, request, new IoctlArg(value));
        }
        catch (Exception e)
        {
            return Oops(nameof(Ioctl), e);
        }
        finally
        {
            f.Put();
            ReturnToUser(previous);
        }
    }

    /// <summary>mmap(2): the address, or a negative errno. <paramref name="fd"/> -1 with MAP_ANONYMOUS for anonymous memory.</summary>
    public long Mmap(ulong addr, ulong length, Prot prot, MapFlags flags, int fd = -1, ulong offset = 0) =>
        Syscall(nameof(Mmap), () =>
        {
            File? file = null;
            if ((flags & MapFlags.Anonymous) == 0)
            {
                var got = Files.Get(fd);
                if (!got.TryGetValue(out file))
                {
                    return -(long)got.Error;
                }
            }

            try
            {
                var result = Mm.Mmap(addr, length, prot, flags, file, offset);
                return result.IsOk ? (long)result.Value : -(long)result.Error;
            }
            finally
            {
                file?.Put();
            }
        });

    /// <summary>munmap(2).</summary>
    public int Munmap(ulong addr, ulong length) => (int)Syscall(nameof(Munmap), () => Mm.Munmap(addr, length).ToSyscall());

    /// <summary>mprotect(2).</summary>
    public int Mprotect(ulong addr, ulong length, Prot prot) => (int)Syscall(nameof(Mprotect), () => Mm.Mprotect(addr, length, prot).ToSyscall());

    /// <summary>madvise(2).</summary>
    public int Madvise(ulong addr, ulong length, Madvise advice) => (int)Syscall(nameof(Madvise), () => Mm.Madvise(addr, length, advice).ToSyscall());

    /// <summary>mlock(2).</summary>
    public int Mlock(ulong addr, ulong length) => (int)Syscall(nameof(Mlock), () => Mm.Mlock(addr, length, lockIt: true).ToSyscall());

    /// <summary>munlock(2).</summary>
    public int Munlock(ulong addr, ulong length) => (int)Syscall(nameof(Munlock), () => Mm.Mlock(addr, length, lockIt: false).ToSyscall());

    /// <summary>eventfd(2).</summary>
    public int EventFd(uint initial, EventFdFlags flags = EventFdFlags.None) => (int)Syscall(nameof(EventFd), () =>
    {
        if ((flags & ~(EventFdFlags.Semaphore | EventFdFlags.NonBlock | EventFdFlags.CloExec)) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        var file = EventFdOperations.CreateFile(initial, flags);
        var fd = Files.Install(file);
        if (!fd.IsOk)
        {
            file.Put();
            return -(long)fd.Error;
        }

        return fd.Value;
    });

    /// <summary>pread(2).</summary>
    public long Pread(int fd, Span<byte> buffer, long offset)
    {
        var file = Files.Get(fd);
        if (!file.TryGetValue(out var f))
        {
            return -(long)file.Error;
        }

        var previous = Enter();
        try
        {
            return offset < 0 ? -(long)Errno.EINVAL : f.Operations.Read(f, buffer, offset);
        }
        catch (Exception e)
        {
            return Oops(nameof(Pread), e);
        }
        finally
        {
            f.Put();
            ReturnToUser(previous);
        }
    }

    /// <summary>pwrite(2).</summary>
    public long Pwrite(int fd, ReadOnlySpan<byte> buffer, long offset)
    {
        var file = Files.Get(fd);
        if (!file.TryGetValue(out var f))
        {
            return -(long)file.Error;
        }

        var previous = Enter();
        try
        {
            return offset < 0 ? -(long)Errno.EINVAL : f.Operations.Write(f, buffer, offset);
        }
        catch (Exception e)
        {
            return Oops(nameof(Pwrite), e);
        }
        finally
        {
            f.Put();
            ReturnToUser(previous);
        }
    }

    /// <summary>
    /// A CPU load from user memory: bytes read, or -EFAULT with a SIGSEGV or SIGBUS recorded.
    /// </summary>
    public long ReadMemory(ulong vaddr, Span<byte> buffer)
    {
        var previous = Enter();
        try
        {
            var done = 0;
            while (done < buffer.Length)
            {
                var n = Chunk(vaddr, done, buffer.Length, out var at);
                if (!Translate(at, write: false, out var phys))
                {
                    return -(long)Errno.EFAULT;
                }

                Machine.Memory.Read(new PhysAddr(phys), buffer.Slice(done, n));
                done += n;
            }

            return done;
        }
        catch (Exception e)
        {
            return Oops(nameof(ReadMemory), e);
        }
        finally
        {
            ReturnToUser(previous);
        }
    }

    /// <summary>A CPU store to user memory: bytes written, or -EFAULT with a SIGSEGV or SIGBUS recorded.</summary>
    public long WriteMemory(ulong vaddr, ReadOnlySpan<byte> buffer)
    {
        var previous = Enter();
        try
        {
            var done = 0;
            while (done < buffer.Length)
            {
                var n = Chunk(vaddr, done, buffer.Length, out var at);
                if (!Translate(at, write: true, out var phys))
                {
                    return -(long)Errno.EFAULT;
                }

                Machine.Memory.Write(new PhysAddr(phys), buffer.Slice(done, n));
                done += n;
            }

            return done;
        }
        catch (Exception e)
        {
            return Oops(nameof(WriteMemory), e);
        }
        finally
        {
            ReturnToUser(previous);
        }
    }

    /// <summary>Process exit: closes every fd and tears the address space down.</summary>
    public void Exit()
    {
        if (_exited)
        {
            return;
        }

        _exited = true;
        Syscall(nameof(Exit), () =>
        {
            Mm.Teardown();
            Files.CloseAll();
            return 0;
        });
    }

    private int Chunk(ulong vaddr, int done, int length, out ulong at)
    {
        at = unchecked(vaddr + (ulong)done);
        var pageLeft = Machine.Geometry.PageSize - (at & (Machine.Geometry.PageSize - 1));
        return (int)Math.Min((ulong)(length - done), pageLeft);
    }

    private bool Translate(ulong vaddr, bool write, out ulong phys)
    {
        var fault = Mm.TranslateForAccess(vaddr, write, out phys);
        if (fault == VmFaultResult.None)
        {
            return true;
        }

        _signals.Add(new SignalInfo(fault == VmFaultResult.SigSegv ? SignalInfo.SIGSEGV : SignalInfo.SIGBUS, vaddr));
        return false;
    }

    private long Syscall(string name, Func<long> body)
    {
        var previous = Enter();
        try
        {
            return body();
        }
        catch (Exception e)
        {
            return Oops(name, e);
        }
        finally
        {
            ReturnToUser(previous);
        }
    }

    private UserProcess? Enter()
    {
        var previous = t_current;
        t_current = this;
        return previous;
    }

    private long Oops(string name, Exception e)
    {
        Machine.RecordOops($"{name} (pid {Pid}): {e}");
        return -(long)Errno.EIO;
    }

    // exit_to_user_mode: deferred work (e.g. notifier unregistration) runs before the process continues.
    private void ReturnToUser(UserProcess? previous)
    {
        try
        {
            Machine.SystemWorkqueue.Flush();
        }
        catch (Exception e)
        {
            Machine.RecordOops($"workqueue {Machine.SystemWorkqueue.Name}: {e}");
        }
        finally
        {
            t_current = previous;
        }
    }
}
