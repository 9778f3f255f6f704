using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Apex.Tests.Infrastructure;

/// <summary>Every log entry of a test server at Warning and above, with its exception, as text (add it with <c>services.AddSingleton&lt;ILoggerProvider&gt;(log)</c>).</summary>
public sealed class CapturedLog : ILoggerProvider
{
    public ConcurrentQueue<string> Entries { get; } = new();

    /// <summary>The entries at Error and above: what a request must never cause.</summary>
    public IEnumerable<string> Errors => Entries.Where(e => e.StartsWith("Error", StringComparison.Ordinal) || e.StartsWith("Critical", StringComparison.Ordinal));

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, Entries);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) entries.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
        }
    }
}
