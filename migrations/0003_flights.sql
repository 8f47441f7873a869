-- nycflights13: every flight departing New York City in 2013, with airlines, airports, planes and
-- hourly weather. Primary keys only (surrogate keys where the data has none) and deliberately no
-- secondary indexes or foreign keys (the data has dangling tail numbers and destinations): this is
-- the large workload for performance tests and the index advisor.
CREATE SCHEMA flights;
COMMENT ON SCHEMA flights IS 'nycflights13: flights departing NYC airports (JFK, LGA, EWR) in 2013.';

CREATE TABLE flights.airlines (
    carrier text PRIMARY KEY,
    name text NOT NULL
);
COMMENT ON TABLE flights.airlines IS 'Airline names by carrier code.';
COMMENT ON COLUMN flights.airlines.carrier IS 'Two-letter carrier code, e.g. UA, AA.';
COMMENT ON COLUMN flights.airlines.name IS 'Full airline name.';

CREATE TABLE flights.airports (
    faa text PRIMARY KEY,
    name text NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    alt integer NOT NULL,
    tz integer NOT NULL,
    dst text NOT NULL,
    tzone text
);
COMMENT ON TABLE flights.airports IS 'US airports by FAA code.';
COMMENT ON COLUMN flights.airports.faa IS 'FAA airport code, e.g. JFK.';
COMMENT ON COLUMN flights.airports.name IS 'Airport name.';
COMMENT ON COLUMN flights.airports.lat IS 'Latitude in degrees.';
COMMENT ON COLUMN flights.airports.lon IS 'Longitude in degrees.';
COMMENT ON COLUMN flights.airports.alt IS 'Altitude in feet.';
COMMENT ON COLUMN flights.airports.tz IS 'Offset from GMT in hours.';
COMMENT ON COLUMN flights.airports.dst IS 'Daylight saving time zone: A (US standard), U (unknown), N (none).';
COMMENT ON COLUMN flights.airports.tzone IS 'IANA time zone, e.g. America/New_York.';

CREATE TABLE flights.planes (
    tailnum text PRIMARY KEY,
    year integer,
    type text NOT NULL,
    manufacturer text NOT NULL,
    model text NOT NULL,
    engines integer NOT NULL,
    seats integer NOT NULL,
    speed integer,
    engine text NOT NULL
);
COMMENT ON TABLE flights.planes IS 'Aircraft by tail number.';
COMMENT ON COLUMN flights.planes.tailnum IS 'Tail number (registration), e.g. N14228.';
COMMENT ON COLUMN flights.planes.year IS 'Year manufactured.';
COMMENT ON COLUMN flights.planes.type IS 'Type of aircraft, e.g. Fixed wing multi engine.';
COMMENT ON COLUMN flights.planes.manufacturer IS 'Manufacturer, e.g. BOEING, AIRBUS.';
COMMENT ON COLUMN flights.planes.model IS 'Model, e.g. 737-824.';
COMMENT ON COLUMN flights.planes.engines IS 'Number of engines.';
COMMENT ON COLUMN flights.planes.seats IS 'Number of seats.';
COMMENT ON COLUMN flights.planes.speed IS 'Average cruising speed in mph.';
COMMENT ON COLUMN flights.planes.engine IS 'Type of engine, e.g. Turbo-fan.';

CREATE TABLE flights.weather (
    weather_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin text NOT NULL,
    year integer NOT NULL,
    month integer NOT NULL,
    day integer NOT NULL,
    hour integer NOT NULL,
    temp double precision,
    dewp double precision,
    humid double precision,
    wind_dir integer,
    wind_speed double precision,
    wind_gust double precision,
    precip double precision NOT NULL,
    pressure double precision,
    visib double precision NOT NULL,
    time_hour timestamptz NOT NULL
);
COMMENT ON TABLE flights.weather IS 'Hourly weather at the three NYC airports.';
COMMENT ON COLUMN flights.weather.weather_id IS 'Surrogate key (the data has none).';
COMMENT ON COLUMN flights.weather.origin IS 'Weather station: EWR, JFK or LGA.';
COMMENT ON COLUMN flights.weather.year IS 'Year of the observation.';
COMMENT ON COLUMN flights.weather.month IS 'Month of the observation (1-12).';
COMMENT ON COLUMN flights.weather.day IS 'Day of the month.';
COMMENT ON COLUMN flights.weather.hour IS 'Hour of the day (0-23), local time.';
COMMENT ON COLUMN flights.weather.temp IS 'Temperature in degrees Fahrenheit.';
COMMENT ON COLUMN flights.weather.dewp IS 'Dew point in degrees Fahrenheit.';
COMMENT ON COLUMN flights.weather.humid IS 'Relative humidity in percent.';
COMMENT ON COLUMN flights.weather.wind_dir IS 'Wind direction in degrees.';
COMMENT ON COLUMN flights.weather.wind_speed IS 'Wind speed in mph.';
COMMENT ON COLUMN flights.weather.wind_gust IS 'Gust speed in mph.';
COMMENT ON COLUMN flights.weather.precip IS 'Precipitation in inches.';
COMMENT ON COLUMN flights.weather.pressure IS 'Sea level pressure in millibars.';
COMMENT ON COLUMN flights.weather.visib IS 'Visibility in miles.';
COMMENT ON COLUMN flights.weather.time_hour IS 'Date and hour of the observation.';

CREATE TABLE flights.flights (
    flight_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    year integer NOT NULL,
    month integer NOT NULL,
    day integer NOT NULL,
    dep_time integer,
    sched_dep_time integer NOT NULL,
    dep_delay integer,
    arr_time integer,
    sched_arr_time integer NOT NULL,
    arr_delay integer,
    carrier text NOT NULL,
    flight integer NOT NULL,
    tailnum text,
    origin text NOT NULL,
    dest text NOT NULL,
    air_time integer,
    distance integer NOT NULL,
    hour integer NOT NULL,
    minute integer NOT NULL,
    time_hour timestamptz NOT NULL
);
COMMENT ON TABLE flights.flights IS 'Every flight that departed JFK, LGA or EWR in 2013 (336,776 rows).';
COMMENT ON COLUMN flights.flights.flight_id IS 'Surrogate key (the data has none).';
COMMENT ON COLUMN flights.flights.year IS 'Year of departure (2013).';
COMMENT ON COLUMN flights.flights.month IS 'Month of departure (1-12).';
COMMENT ON COLUMN flights.flights.day IS 'Day of the month of departure.';
COMMENT ON COLUMN flights.flights.dep_time IS 'Actual departure time, local, as HHMM; NULL for cancelled flights.';
COMMENT ON COLUMN flights.flights.sched_dep_time IS 'Scheduled departure time, local, as HHMM.';
COMMENT ON COLUMN flights.flights.dep_delay IS 'Departure delay in minutes; negative means early.';
COMMENT ON COLUMN flights.flights.arr_time IS 'Actual arrival time, local, as HHMM.';
COMMENT ON COLUMN flights.flights.sched_arr_time IS 'Scheduled arrival time, local, as HHMM.';
COMMENT ON COLUMN flights.flights.arr_delay IS 'Arrival delay in minutes; negative means early.';
COMMENT ON COLUMN flights.flights.carrier IS 'Carrier code (flights.airlines.carrier).';
COMMENT ON COLUMN flights.flights.flight IS 'Flight number.';
COMMENT ON COLUMN flights.flights.tailnum IS 'Plane tail number (flights.planes.tailnum).';
COMMENT ON COLUMN flights.flights.origin IS 'Origin airport code: JFK, LGA or EWR (flights.airports.faa).';
COMMENT ON COLUMN flights.flights.dest IS 'Destination airport code (flights.airports.faa).';
COMMENT ON COLUMN flights.flights.air_time IS 'Time in the air in minutes.';
COMMENT ON COLUMN flights.flights.distance IS 'Distance between the airports in miles.';
COMMENT ON COLUMN flights.flights.hour IS 'Hour of the scheduled departure.';
COMMENT ON COLUMN flights.flights.minute IS 'Minute of the scheduled departure.';
COMMENT ON COLUMN flights.flights.time_hour IS 'Scheduled departure date and hour.';
