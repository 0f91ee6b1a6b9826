using KernelModel.Kernel;
using NSubstitute;

namespace KernelModel.Tests.Kernel;

public class NotifierChainTests
{
    private const ulong Action = 7;

    public static TheoryData<string> Chains => new() { "blocking", "srcu" };

    private static NotifierChain CreateSut(string kind) => kind switch
    {
        "blocking" => new BlockingNotifierChain(),
        "srcu" => new SrcuNotifierChain(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    private static INotifierCallback Callback(NotifyResult result = NotifyResult.Ok)
    {
        var callback = Substitute.For<INotifierCallback>();
        callback.Notify(Arg.Any<NotifierBlock>(), Arg.Any<ulong>(), Arg.Any<object?>()).Returns(result);
        return callback;
    }

    [Theory]
    [MemberData(nameof(Chains))]
    public void CallChain_BlocksOfDifferentPriority_CallsHighestFirstAndEqualInRegistrationOrder(string kind)
    {
        var chain = CreateSut(kind);
        var low = Callback();
        var highFirst = Callback();
        var highSecond = Callback();
        var mid = Callback();
        var lowBlock = new NotifierBlock(low, priority: -5);
        var highFirstBlock = new NotifierBlock(highFirst, priority: 10);
        var highSecondBlock = new NotifierBlock(highSecond, priority: 10);
        var midBlock = new NotifierBlock(mid, priority: 0);
        chain.Register(lowBlock);
        chain.Register(highFirstBlock);
        chain.Register(midBlock);
        chain.Register(highSecondBlock);
        var data = new object();

        var result = chain.CallChain(Action, data);

        Assert.Equal(NotifyResult.Ok, result);
        Received.InOrder(() =>
        {
            highFirst.Notify(highFirstBlock, Action, data);
            highSecond.Notify(highSecondBlock, Action, data);
            mid.Notify(midBlock, Action, data);
            low.Notify(lowBlock, Action, data);
        });
    }

    [Theory]
    [InlineData("blocking", NotifyResult.Stop)]
    [InlineData("blocking", NotifyResult.Bad)]
    [InlineData("srcu", NotifyResult.Stop)]
    [InlineData("srcu", NotifyResult.Bad)]
    public void CallChain_CallbackReturnsStopMask_SkipsLaterBlocksAndReturnsItsResult(string kind, NotifyResult stop)
    {
        var chain = CreateSut(kind);
        var first = Callback();
        var stopper = Callback(stop);
        var after = Callback();
        chain.Register(new NotifierBlock(first, 3));
        chain.Register(new NotifierBlock(stopper, 2));
        chain.Register(new NotifierBlock(after, 1));

        var result = chain.CallChain(Action, null);

        Assert.Equal(stop, result);
        first.ReceivedWithAnyArgs(1).Notify(default!, default, default);
        stopper.ReceivedWithAnyArgs(1).Notify(default!, default, default);
        after.DidNotReceiveWithAnyArgs().Notify(default!, default, default);
    }

    [Theory]
    [MemberData(nameof(Chains))]
    public void CallChain_EmptyChain_ReturnsDone(string kind)
    {
        var chain = CreateSut(kind);

        Assert.Equal(NotifyResult.Done, chain.CallChain(Action, null));
    }

    [Theory]
    [MemberData(nameof(Chains))]
    public void Register_SameBlockTwice_ReturnsEexist(string kind)
    {
        var chain = CreateSut(kind);
        var block = new NotifierBlock(Callback());
        chain.Register(block);

        var second = chain.Register(block);

        Assert.Equal(Errno.EEXIST, second.Error);
        Assert.Equal(1, chain.Count);
    }

    [Theory]
    [MemberData(nameof(Chains))]
    public void Unregister_BlockNotOnChain_ReturnsEnoent(string kind)
    {
        var chain = CreateSut(kind);
        chain.Register(new NotifierBlock(Callback()));

        var result = chain.Unregister(new NotifierBlock(Callback()));

        Assert.Equal(Errno.ENOENT, result.Error);
        Assert.Equal(1, chain.Count);
    }

    [Theory]
    [MemberData(nameof(Chains))]
    public void Unregister_RegisteredBlock_IsNotCalledAgain(string kind)
    {
        var chain = CreateSut(kind);
        var callback = Callback();
        var block = new NotifierBlock(callback);
        chain.Register(block);

        var result = chain.Unregister(block);
        chain.CallChain(Action, null);

        Assert.True(result.IsOk);
        Assert.Equal(0, chain.Count);
        callback.DidNotReceiveWithAnyArgs().Notify(default!, default, default);
    }

    [Theory]
    [MemberData(nameof(Chains))]
    public void Unregister_OwnBlockInsideChain_ReturnsEdeadlkAndStaysRegistered(string kind)
    {
        var chain = CreateSut(kind);
        var callback = Substitute.For<INotifierCallback>();
        NotifierBlock block = new(callback);
        KResult? inside = null;
        callback.Notify(block, Action, Arg.Any<object?>()).Returns(_ =>
        {
            inside = chain.Unregister(block);
            return NotifyResult.Ok;
        });
        chain.Register(block);

        chain.CallChain(Action, null);

        Assert.Equal(Errno.EDEADLK, inside?.Error);
        Assert.Equal(1, chain.Count);
    }

    [Theory]
    [MemberData(nameof(Chains))]
    public void Unregister_DeferredToWorkqueueFromInsideChain_SucceedsAtFlush(string kind)
    {
        var chain = CreateSut(kind);
        var workqueue = new Workqueue("test");
        var callback = Substitute.For<INotifierCallback>();
        NotifierBlock block = new(callback);
        KResult? deferred = null;
        callback.Notify(block, Action, Arg.Any<object?>()).Returns(_ =>
        {
            workqueue.Schedule(() => deferred = chain.Unregister(block), "unregister");
            return NotifyResult.Ok;
        });
        chain.Register(block);
        chain.CallChain(Action, null);
        Assert.Null(deferred);

        var flushed = workqueue.Flush();
        chain.CallChain(Action, null);

        Assert.True(flushed.IsOk);
        Assert.True(deferred?.IsOk);
        Assert.Equal(0, chain.Count);
        callback.ReceivedWithAnyArgs(1).Notify(default!, default, default);
    }

    [Theory]
    [InlineData("blocking", Errno.EDEADLK, 1)]
    [InlineData("srcu", Errno.None, 2)]
    public void Register_FromInsideChain_OnlySrcuAllowsIt(string kind, Errno expected, int expectedCount)
    {
        var chain = CreateSut(kind);
        var newcomer = new NotifierBlock(Callback());
        KResult? inside = null;
        var block = new NotifierBlock((_, _, _) =>
        {
            inside = chain.Register(newcomer);
            return NotifyResult.Ok;
        });
        chain.Register(block);

        chain.CallChain(Action, null);

        Assert.Equal(expected, inside?.Error);
        Assert.Equal(expectedCount, chain.Count);
    }

    [Fact]
    public void Unregister_OtherChainFromInsideCallback_Succeeds()
    {
        var outer = new BlockingNotifierChain();
        var inner = new SrcuNotifierChain();
        var innerBlock = new NotifierBlock(Callback());
        inner.Register(innerBlock);
        KResult? inside = null;
        outer.Register(new NotifierBlock((_, _, _) =>
        {
            inside = inner.Unregister(innerBlock);
            return NotifyResult.Ok;
        }));

        outer.CallChain(Action, null);

        Assert.True(inside?.IsOk);
        Assert.Equal(0, inner.Count);
    }

    [Fact]
    public void NotifierBlock_DelegateCallback_ReceivesBlockActionAndData()
    {
        (NotifierBlock Block, ulong Action, object? Data)? seen = null;
        NotifierBlock? block = null;
        block = new NotifierBlock((b, a, d) =>
        {
            seen = (b, a, d);
            return NotifyResult.Done;
        }, priority: 4);
        var data = "payload";

        var result = block.Callback.Notify(block, Action, data);

        Assert.Equal(NotifyResult.Done, result);
        Assert.Equal((block, Action, (object?)data), seen);
        Assert.Equal(4, block.Priority);
    }
}
