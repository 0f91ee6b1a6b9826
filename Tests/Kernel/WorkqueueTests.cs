using KernelModel.Kernel;

namespace KernelModel.Tests.Kernel;

public class WorkqueueTests
{
    private static Workqueue CreateSut() => new("test");

    [Fact]
    public void Schedule_BeforeFlush_DoesNotRun()
    {
        var workqueue = CreateSut();
        var ran = false;

        workqueue.Schedule(() => ran = true);

        Assert.False(ran);
        Assert.Equal(1, workqueue.PendingCount);
    }

    [Fact]
    public void Flush_SeveralItems_RunsThemInQueueOrder()
    {
        var workqueue = CreateSut();
        var order = new List<int>();
        for (var i = 0; i < 5; i++)
        {
            var n = i;
            workqueue.Schedule(() => order.Add(n));
        }

        var result = workqueue.Flush();

        Assert.True(result.IsOk);
        Assert.Equal([0, 1, 2, 3, 4], order);
        Assert.Equal(0, workqueue.PendingCount);
        Assert.Equal(5, workqueue.Completed);
    }

    [Fact]
    public void Flush_WorkQueuesMoreWork_RunsItInTheSameFlushAfterEarlierItems()
    {
        var workqueue = CreateSut();
        var order = new List<string>();
        workqueue.Schedule(() =>
        {
            order.Add("a");
            workqueue.Schedule(() => order.Add("c"));
        });
        workqueue.Schedule(() => order.Add("b"));

        workqueue.Flush();

        Assert.Equal(["a", "b", "c"], order);
        Assert.Equal(0, workqueue.PendingCount);
    }

    [Fact]
    public void Flush_FromInsideOwnWork_ReturnsEdeadlk()
    {
        var workqueue = CreateSut();
        KResult? inner = null;
        workqueue.Schedule(() => inner = workqueue.Flush());

        var outer = workqueue.Flush();

        Assert.True(outer.IsOk);
        Assert.Equal(Errno.EDEADLK, inner?.Error);
    }

    [Fact]
    public void Flush_OtherQueueFromInsideWork_RunsThatQueue()
    {
        var workqueue = CreateSut();
        var other = new Workqueue("other");
        var otherRan = false;
        other.Schedule(() => otherRan = true);
        KResult? inner = null;
        workqueue.Schedule(() => inner = other.Flush());

        workqueue.Flush();

        Assert.True(inner?.IsOk);
        Assert.True(otherRan);
    }

    [Fact]
    public void Flush_AfterInnerDeadlock_QueueStillUsable()
    {
        var workqueue = CreateSut();
        workqueue.Schedule(() => workqueue.Flush());
        workqueue.Flush();
        var ran = false;
        workqueue.Schedule(() => ran = true);

        var result = workqueue.Flush();

        Assert.True(result.IsOk);
        Assert.True(ran);
    }
}
