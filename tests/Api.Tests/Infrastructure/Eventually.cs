namespace Pipelines.Api.Tests.Infrastructure;

/// <summary>Waits on observable state, never on a guessed delay.</summary>
public static class Eventually
{
    public static async Task<T> WaitAsync<T>(Func<Task<T>> read, Func<T, bool> done, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTimeOffset.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            var value = await read();
            if (done(value))
            {
                return value;
            }
            if (DateTimeOffset.UtcNow > deadline)
            {
                Assert.Fail($"{what}: still not the case after {timeout ?? TimeSpan.FromSeconds(30)}; last seen: {value}");
            }
            await Task.Delay(50);
        }
    }
}
