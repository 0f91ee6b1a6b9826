using KernelModel.Mm;

namespace KernelModel.Kernel;

/// <summary>
/// The argument of an ioctl as the kernel sees it: either a user buffer (a pointer to a struct,
/// copied in and out like copy_from_user/copy_to_user) or a plain integer.
/// </summary>
public readonly ref struct IoctlArg
{
    /// <summary>An argument that is a user buffer.</summary>
    public IoctlArg(Span<byte> buffer)
    {
        Buffer = buffer;
        IsBuffer = true;
        Value = 0;
    }

    /// <summary>An argument that is an integer.</summary>
    public IoctlArg(ulong value)
    {
        Buffer = default;
        IsBuffer = false;
        Value = value;
    }

    /// <summary>The user buffer; empty for an integer argument.</summary>
    public Span<byte> Buffer { get; }

    /// <summary>True when the argument is a buffer.</summary>
    public bool IsBuffer { get; }

    /// <summary>The integer argument; 0 for a buffer.</summary>
    public ulong Value { get; }
}

/// <summary>
/// A file's operations (struct file_operations). One table per kind of file: a driver derives a
/// sealed class and overrides what it supports. The defaults answer as Linux does for a missing op.
/// </summary>
public abstract class FileOperations
{
    /// <summary>Called by open(); a failure leaves no fd behind.</summary>
    public virtual KResult Open(File file) => KResult.Ok;

    /// <summary>pread: bytes read or a negative errno.</summary>
    public virtual long Read(File file, Span<byte> buffer, long offset) => -(long)Errno.EINVAL;

    /// <summary>pwrite: bytes written or a negative errno.</summary>
    public virtual long Write(File file, ReadOnlySpan<byte> buffer, long offset) => -(long)Errno.EINVAL;

    /// <summary>unlocked_ioctl: the result or a negative errno. Missing op → ENOTTY, as vfs_ioctl.</summary>
    public virtual long Ioctl(File file, uint request, IoctlArg arg) => -(long)Errno.ENOTTY;

    /// <summary>mmap: set up <paramref name="vma"/> (flags, ops, private data). Missing op → ENODEV.</summary>
    public virtual KResult Mmap(File file, Vma vma) => Errno.ENODEV;

    /// <summary>release: the last reference to the file is gone (fds and VMAs alike).</summary>
    public virtual void Release(File file)
    {
    }
}

/// <summary>
/// An open file (struct file). Reference counted: every fd and every VMA that maps it holds one,
/// so a device file is released only when its last fd is closed <em>and</em> its last mmap is gone.
/// </summary>
public sealed class File
{
    private int _refCount = 1;

    /// <summary>Creates an open file over an inode with one reference held by the caller.</summary>
    public File(FileOperations operations, Inode inode, object? privateData = null)
    {
        Operations = operations;
        Inode = inode;
        PrivateData = privateData;
    }

    /// <summary>f_op.</summary>
    public FileOperations Operations { get; }

    /// <summary>f_inode.</summary>
    public Inode Inode { get; }

    /// <summary>f_mapping: the inode's address space, shared by every file of that inode.</summary>
    public AddressSpace Mapping => Inode.Mapping;

    /// <summary>private_data.</summary>
    public object? PrivateData { get; set; }

    /// <summary>The current reference count (for tests and diagnostics).</summary>
    public int RefCount => Volatile.Read(ref _refCount);

    /// <summary>True once release has run.</summary>
    public bool IsReleased => RefCount == 0;

    /// <summary>get_file().</summary>
    public File Get()
    {
        if (Interlocked.Increment(ref _refCount) <= 1)
        {
            throw new InvalidOperationException("get_file on a released file");
        }

        return this;
    }

    /// <summary>
    /// Drops the only reference of a file whose open op failed: like do_dentry_open()'s cleanup,
    /// release is not called for a file that never opened.
    /// </summary>
    internal void DiscardUnopened()
    {
        if (Interlocked.CompareExchange(ref _refCount, 0, 1) != 1)
        {
            throw new InvalidOperationException("discard of a file that is shared");
        }
    }

    /// <summary>fput(): the last put calls release.</summary>
    public void Put()
    {
        var left = Interlocked.Decrement(ref _refCount);
        if (left == 0)
        {
            Operations.Release(this);
        }
        else if (left < 0)
        {
            throw new InvalidOperationException("fput on a released file");
        }
    }
}

/// <summary>
/// An inode. Pseudo-filesystem inodes (anon inodes, the vfio device inode) carry their own
/// address space, so every file opened on them shares one i_mapping.
/// </summary>
public sealed class Inode
{
    private static long s_nextIno;

    /// <summary>Creates an inode with a fresh address space.</summary>
    public Inode(string name)
    {
        Name = name;
        Ino = Interlocked.Increment(ref s_nextIno);
        Mapping = new AddressSpace(this);
    }

    /// <summary>The inode number.</summary>
    public long Ino { get; }

    /// <summary>A name for diagnostics (the pseudo-fs dentry name).</summary>
    public string Name { get; }

    /// <summary>i_mapping.</summary>
    public AddressSpace Mapping { get; }

    /// <summary>i_private.</summary>
    public object? PrivateData { get; set; }

    /// <inheritdoc />
    public override string ToString() => $"{Name} (ino {Ino})";
}
